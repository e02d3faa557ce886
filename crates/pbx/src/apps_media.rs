//! Carries out the engine's terminating-media commands on `media::endpoint` and turns the media
//! engine's events back into engine inputs. Names become files here: a prompt id is resolved
//! for the tenant and language (`apps::prompt_files`), music on hold is a class's files, and
//! call-progress tones are rendered once per country into WAV files of one cadence cycle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apps::prompt::Lang;
use engine::db::LegStats;
use engine::media::{MediaCommand, MediaEvent, PlayItem, ToneKind};
use media::codec::CodecKind;
use media::endpoint::{
    self, BridgeId, EndpointId, EngineConfig, EngineEvent, MediaEngine, Negotiated, PlayRequest,
};
use media::progress::{Country, ProgressTone, Tone};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Events the media engine may queue before it drops (and counts) them.
const EVENT_QUEUE: usize = 4096;

/// The terminating media of one node.
pub(crate) struct AppMedia {
    engine: MediaEngine,
    endpoints: HashMap<u64, endpoint::Endpoint>,
    data_dir: PathBuf,
    /// Each country's rendered tones.
    tones: HashMap<(Country, ToneKind), PathBuf>,
}

/// In-band DTMF detection for every endpoint that asks (Goertzel with talk-off protection).
struct Inband(media::inband::DtmfDetector, Vec<media::inband::InbandDigit>);

impl endpoint::DigitDetector for Inband {
    fn process(&mut self, pcm: &[i16], rate: u32) -> Option<char> {
        if self.0.rate() != rate.max(8000) {
            self.0 = media::inband::DtmfDetector::new(rate);
        }
        self.1.clear();
        self.0.process(pcm, &mut self.1);
        self.1.first().map(|d| d.digit)
    }
}

fn inband() -> Box<dyn endpoint::DigitDetector> {
    Box::new(Inband(media::inband::DtmfDetector::new(8000), Vec::new()))
}

/// Writes one cadence cycle of `tone` as a 16 kHz WAV (played repeatedly for a steady tone).
fn render_tone(dir: &Path, country: Country, tone: Tone) -> Option<PathBuf> {
    let path = dir.join(format!("{country:?}-{tone:?}.wav").to_ascii_lowercase());
    let mut tone_gen = ProgressTone::new(country, tone, 16_000);
    let cycle_ms: u32 = tone_gen
        .spec()
        .cadence
        .iter()
        .map(|s| s.ms)
        .sum::<u32>()
        .max(20);
    let mut pcm = vec![0i16; (16 * cycle_ms) as usize];
    for frame in pcm.chunks_mut(320) {
        tone_gen.next_frame(frame);
    }
    std::fs::create_dir_all(dir).ok()?;
    match media::wav::write_file(&path, 16_000, &pcm) {
        Ok(()) => Some(path),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "call-progress tone not written");
            None
        }
    }
}

impl AppMedia {
    /// The engine on `relay`'s port pool, every country's tones rendered under `data_dir`.
    pub(crate) fn new(
        relay: &media::Relay,
        data_dir: PathBuf,
        media_timeout: Duration,
    ) -> (AppMedia, mpsc::Receiver<EngineEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let config = EngineConfig {
            media_timeout,
            inband_detector: Some(inband),
            ..EngineConfig::default()
        };
        let engine = MediaEngine::new(config, relay.ports(), tx);
        let dir = data_dir.join("tones");
        let mut tones = HashMap::new();
        for country in [Country::Japan, Country::NorthAmerica] {
            for (k, t) in [
                (ToneKind::Ringback, Tone::Ringback),
                (ToneKind::Busy, Tone::Busy),
                (ToneKind::Congestion, Tone::Congestion),
            ] {
                if let Some(p) = render_tone(&dir, country, t) {
                    tones.insert((country, k), p);
                }
            }
        }
        (
            AppMedia {
                engine,
                endpoints: HashMap::new(),
                data_dir,
                tones,
            },
            rx,
        )
    }

    fn items(&self, items: Vec<PlayItem>) -> (Vec<endpoint::PlayItem>, bool) {
        let mut out = Vec::new();
        let mut moh = false;
        for i in items {
            match i {
                PlayItem::Prompt { id, tenant, lang } => {
                    let lang: Lang = lang.parse().unwrap_or(Lang::En);
                    match apps::prompt_files::resolve_lang(&self.data_dir, Some(tenant), lang, &id)
                    {
                        Some((p, got)) => {
                            if got != lang {
                                info!(prompt = %id, tenant, wanted = lang.as_str(), playing = got.as_str(), "prompt missing in the caller's language: playing the other language");
                            }
                            out.push(endpoint::PlayItem::File(p))
                        }
                        None => {
                            warn!(prompt = %id, lang = lang.as_str(), "prompt missing: playing the error tone");
                            out.extend(
                                endpoint::ToneSpec::error_tone()
                                    .into_iter()
                                    .map(endpoint::PlayItem::Tone),
                            );
                        }
                    }
                }
                PlayItem::Tone(ToneKind::Beep) => {
                    out.push(endpoint::PlayItem::Tone(endpoint::ToneSpec::beep()))
                }
                PlayItem::CountryTone {
                    tone: ToneKind::Beep,
                    ..
                } => out.push(endpoint::PlayItem::Tone(endpoint::ToneSpec::beep())),
                PlayItem::CountryTone { tone, country } => {
                    let c = Country::from_code(&country).unwrap_or(Country::Japan);
                    out.extend(self.tone_items(c, tone));
                }
                // Without a country: the first of `tones.country` (the engine names one).
                PlayItem::Tone(k) => out.extend(self.tone_items(Country::Japan, k)),
                PlayItem::Moh { tenant, class } => {
                    moh = true;
                    let files = apps::moh::class_files(&self.data_dir, Some(tenant), &class);
                    let files = if files.is_empty() {
                        apps::moh::class_files(&self.data_dir, Some(tenant), "default")
                    } else {
                        files
                    };
                    if files.is_empty() {
                        warn!(tenant, %class, "no music on hold: playing silence");
                        out.push(endpoint::PlayItem::Silence(Duration::from_secs(1)));
                    }
                    out.extend(files.into_iter().map(endpoint::PlayItem::File));
                }
                PlayItem::Silence { ms } => out.push(endpoint::PlayItem::Silence(
                    Duration::from_millis(u64::from(ms)),
                )),
                PlayItem::File { path } => {
                    let full = self.data_dir.join(&path);
                    if path.split('/').any(|c| c == "..") || !full.is_file() {
                        warn!(%path, "audio file missing: playing the error tone");
                        out.extend(
                            endpoint::ToneSpec::error_tone()
                                .into_iter()
                                .map(endpoint::PlayItem::Tone),
                        );
                    } else {
                        out.push(endpoint::PlayItem::File(full));
                    }
                }
            }
        }
        (out, moh)
    }

    /// A rendered call-progress tone (the error tone if it could not be written).
    fn tone_items(&self, country: Country, tone: ToneKind) -> Vec<endpoint::PlayItem> {
        match self.tones.get(&(country, tone)) {
            Some(p) => vec![endpoint::PlayItem::File(p.clone())],
            None => endpoint::ToneSpec::error_tone()
                .into_iter()
                .map(endpoint::PlayItem::Tone)
                .collect(),
        }
    }

    /// A handle on the media engine (its counters are read for `/metrics`).
    pub(crate) fn engine(&self) -> MediaEngine {
        self.engine.clone()
    }

    /// The data directory (recording paths are relative to it).
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Keeps an endpoint that opened; the engine's answer either way.
    fn opened(
        &mut self,
        endpoint: engine::media::EndpointId,
        r: Result<media::endpoint::Endpoint, media::endpoint::Error>,
    ) -> MediaEvent {
        match r {
            Ok(ep) => {
                let local = ep.local();
                ep.set_inband_dtmf(true);
                self.endpoints.insert(endpoint.0, ep);
                MediaEvent::EndpointOpened { endpoint, local }
            }
            Err(e) => MediaEvent::EndpointFailed {
                endpoint,
                reason: e.to_string(),
            },
        }
    }

    /// Carries out one command; the answer, if any, goes back to the engine.
    pub(crate) fn command(&mut self, cmd: MediaCommand) -> Option<MediaEvent> {
        match cmd {
            MediaCommand::OpenEndpoint {
                endpoint,
                call_id,
                ip,
                group,
            } => {
                let r = self
                    .engine
                    .open(EndpointId(endpoint.0), ip, group, &call_id);
                Some(self.opened(endpoint, r))
            }
            MediaCommand::AdoptEndpoint {
                endpoint,
                call_id,
                at,
                group,
            } => {
                let r = self
                    .engine
                    .open_at(EndpointId(endpoint.0), at, group, &call_id);
                Some(self.opened(endpoint, r))
            }
            MediaCommand::ConfigureEndpoint {
                endpoint,
                rtp,
                rtcp,
                codec,
                telephone_event,
                ptime,
            } => {
                let ep = self.endpoints.get(&endpoint.0)?;
                let Some(kind) = CodecKind::from_rtpmap(&codec.name, codec.clock) else {
                    warn!(codec = %codec.name, "codec not available for a terminating leg");
                    return None;
                };
                ep.set_codec(Negotiated {
                    codec: kind,
                    payload_type: codec.pt,
                    telephone_event,
                    ptime_ms: ptime.max(20),
                    receive: vec![(codec.pt, kind)],
                    receive_events: telephone_event.map(|t| vec![t.0]).unwrap_or_default(),
                });
                if let Some(rtp) = rtp {
                    ep.set_remote(rtp, rtcp);
                }
                None
            }
            MediaCommand::Play {
                endpoint,
                id,
                items,
                stop_on_dtmf,
                repeat,
            } => {
                let (items, _moh) = self.items(items);
                let ep = self.endpoints.get(&endpoint.0)?;
                ep.play(PlayRequest {
                    id,
                    items,
                    repeat: if repeat { 0 } else { 1 },
                    stop_on_dtmf,
                });
                None
            }
            MediaCommand::StopPlay { endpoint } => {
                self.endpoints.get(&endpoint.0)?.stop_play();
                None
            }
            MediaCommand::StopRecord { endpoint } => {
                self.endpoints.get(&endpoint.0)?.stop_record();
                None
            }
            MediaCommand::Join { endpoint, bridge } => {
                self.endpoints.get(&endpoint.0)?.join(BridgeId(bridge));
                None
            }
            MediaCommand::Record {
                endpoint,
                id,
                path,
                max_s,
                silence_s,
                beep,
            } => {
                let ep = self.endpoints.get(&endpoint.0)?;
                let full = self.data_dir.join(&path);
                if let Some(dir) = full.parent()
                    && let Err(e) = std::fs::create_dir_all(dir)
                {
                    warn!(path = %full.display(), error = %e, "recording directory not created");
                    return Some(MediaEvent::RecordDone {
                        endpoint,
                        id,
                        path,
                        duration_ms: 0,
                        reason: "error".into(),
                    });
                }
                ep.record(endpoint::RecordRequest {
                    id,
                    path: full,
                    max_len: Duration::from_secs(u64::from(max_s)),
                    silence: (silence_s > 0).then(|| Duration::from_secs(u64::from(silence_s))),
                    beep,
                });
                None
            }
            MediaCommand::SendDigits {
                endpoint,
                digits,
                inband,
            } => {
                let mode = if inband {
                    endpoint::DigitMode::Inband
                } else {
                    endpoint::DigitMode::Rfc4733
                };
                self.endpoints.get(&endpoint.0)?.send_digits(&digits, mode);
                None
            }
            MediaCommand::LimitRate { endpoint, hz } => {
                self.endpoints.get(&endpoint.0)?.set_pcm_rate_limit(hz);
                None
            }
            MediaCommand::SetMute { endpoint, muted } => {
                self.endpoints.get(&endpoint.0)?.set_mute(muted);
                None
            }
            MediaCommand::Leave { endpoint } => {
                self.endpoints.get(&endpoint.0)?.leave();
                None
            }
            MediaCommand::CloseEndpoint { endpoint } => {
                let ep = self.endpoints.remove(&endpoint.0)?;
                tokio::spawn(async move {
                    let s = ep.close().await;
                    info!(
                        endpoint = endpoint.0,
                        rx = s.packets_rx,
                        tx = s.packets_tx,
                        lost = s.lost,
                        underruns = s.underruns,
                        "media endpoint closed"
                    );
                });
                Some(MediaEvent::EndpointClosed {
                    endpoint,
                    stats: LegStats::default(),
                })
            }
            // Relay commands are the driver's.
            _ => None,
        }
    }

    /// The engine input for a media-engine event (`data_dir` makes recording paths relative).
    pub(crate) fn event(ev: EngineEvent, data_dir: &Path) -> Option<MediaEvent> {
        use engine::media::EndpointId as E;
        match ev {
            EngineEvent::Dtmf { ep, digit, source } => {
                info!(endpoint = ep.0, %digit, ?source, "digit");
                Some(match source {
                    endpoint::DtmfSource::Inband => MediaEvent::DtmfInband {
                        endpoint: E(ep.0),
                        digit,
                    },
                    endpoint::DtmfSource::Rfc4733 => MediaEvent::Dtmf {
                        endpoint: E(ep.0),
                        digit,
                    },
                })
            }
            EngineEvent::PlayDone {
                ep,
                id,
                interrupted,
            } => Some(MediaEvent::PlayDone {
                endpoint: E(ep.0),
                id,
                interrupted,
            }),
            EngineEvent::MediaTimeout { ep } => {
                Some(MediaEvent::EndpointTimeout { endpoint: E(ep.0) })
            }
            EngineEvent::FileError { ep, path, reason } => {
                warn!(endpoint = ep.0, path = %path.display(), %reason, "media file unplayable: error tone played instead");
                None
            }
            EngineEvent::RecordDone {
                ep,
                id,
                path,
                duration,
                reason,
            } => {
                use endpoint::RecordReason as R;
                let reason = match reason {
                    R::MaxLength => "max-length",
                    R::Silence => "silence",
                    R::Stopped => "stopped",
                    R::Closed => "closed",
                    R::DiskFull => "disk-full",
                    R::Error => "error",
                };
                let rel = path.strip_prefix(data_dir).unwrap_or(&path);
                Some(MediaEvent::RecordDone {
                    endpoint: E(ep.0),
                    id,
                    path: rel.display().to_string(),
                    duration_ms: duration.as_millis() as u64,
                    reason: reason.into(),
                })
            }
        }
    }
}
