//! Conference mixing across rates on a fake clock: two G.722 members and an Opus member hear
//! each other's audio above 4 kHz (the bridge mixes at the highest member rate), while a PCMU
//! member gets the narrowband part of the same mix without aliases of those high tones.

use super::*;

/// A member's stream: `n` 20 ms packets of the sum of `freqs`, encoded with `codec` (Opus as
/// payload type 111).
fn stream(codec: CodecKind, freqs: &[f64], n: usize) -> Vec<Vec<u8>> {
    let rate = codec.sample_rate();
    let pcm = tone::mix(freqs, Duration::from_millis(20 * n as u64), rate, 8000);
    let mut enc = crate::codec::encoder(codec).expect("encoder");
    let pt = codec.static_payload_type().unwrap_or(111);
    pcm.chunks(codec.samples_per_frame(20))
        .enumerate()
        .map(|(i, frame)| {
            let mut payload = Vec::new();
            enc.encode(frame, &mut payload).expect("encode");
            let ts = codec.timestamp_step(20).wrapping_mul(i as u32);
            RtpHeader::new(pt, 300 + i as u16, ts, 40 + pt as u32)
                .build(&payload)
                .expect("build")
        })
        .collect()
}

/// Every packet's payload decoded with `codec`, at its own sample rate.
fn decode_all(codec: CodecKind, pkts: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = crate::codec::decoder(codec).expect("decoder");
    let mut out = Vec::new();
    for p in pkts {
        let p = RtpPacket::parse(p).expect("rtp");
        dec.decode(p.payload, &mut out).expect("decode");
    }
    out
}

/// A tone above this power is heard; one below [`SILENT`] is not (a tone sent at a quarter of
/// full scale is about 0.015 before coding).
const HEARD: f64 = 0.002;
const SILENT: f64 = 0.0002;

#[test]
fn g722_and_opus_members_hear_each_other_above_4khz_and_pcmu_gets_a_clean_narrowband_mix() {
    // Each wideband member sends a low and a high tone; the PCMU member one low tone.
    let members: [(CodecKind, &[f64]); 4] = [
        (CodecKind::G722, &[600.0, 6000.0]),
        (CodecKind::G722, &[900.0, 5000.0]),
        (CodecKind::Opus, &[1200.0, 5500.0]),
        (CodecKind::Pcmu, &[1500.0]),
    ];
    let t0 = Instant::now();
    let mut g = Group::new();
    let slots: Vec<usize> = members
        .iter()
        .enumerate()
        .map(|(i, (codec, _))| g.insert(core(i as u64 + 1, *codec, t0)))
        .collect();
    for &s in &slots {
        g.join(s, BridgeId(7));
    }
    const N: usize = 60;
    let streams: Vec<Vec<Vec<u8>>> = members.iter().map(|(c, f)| stream(*c, f, N)).collect();
    let mut out: Vec<Vec<Vec<u8>>> = vec![Vec::new(); members.len()];
    let mut sending: Vec<_> = streams.iter().map(|s| s.iter()).collect();
    let mut now = t0;
    for _ in 0..N {
        for (i, &s) in slots.iter().enumerate() {
            let p = sending[i].next().expect("a packet per round");
            g.get_mut(s)
                .expect("core")
                .on_rtp(p, addr(41000 + i as u16), now);
        }
        g.tick(now);
        for (i, &s) in slots.iter().enumerate() {
            out[i].extend(sent(g.get_mut(s).expect("core")));
        }
        now += TICK;
    }
    assert_eq!(
        g.get(slots[2]).expect("opus").rate(),
        48000,
        "the Opus member is mixed at 48 kHz"
    );
    let heard: Vec<Vec<i16>> = members
        .iter()
        .zip(&out)
        .map(|((codec, _), pkts)| {
            assert!(pkts.len() >= N - 2, "{codec}: {} packets", pkts.len());
            // Past the jitter buffer's start.
            decode_all(*codec, &pkts[10..])
        })
        .collect();
    let power_of = |i: usize, f: f64| power(&heard[i], f, members[i].0.sample_rate());
    for (i, (codec, _)) in members.iter().enumerate() {
        for (j, (_, freqs)) in members.iter().enumerate() {
            for &f in freqs.iter() {
                let p = power_of(i, f);
                eprintln!("member {i} ({codec}) hears {f} Hz of member {j}: {p:.5}");
                let audible = f < f64::from(codec.sample_rate()) / 2.0;
                if i == j {
                    assert!(p < SILENT, "member {i} ({codec}) hears its own {f} Hz: {p}");
                } else if audible {
                    assert!(p > HEARD, "member {i} ({codec}) does not hear {f} Hz: {p}");
                }
            }
        }
    }
    // The PCMU member: the high tones are filtered out before its 8 kHz leg, not folded back
    // (6, 5 and 5.5 kHz would alias to 2, 3 and 2.5 kHz).
    for alias in [2000.0, 3000.0, 2500.0] {
        let p = power_of(3, alias);
        eprintln!("PCMU member at the alias {alias} Hz: {p:.6}");
        assert!(p < SILENT, "PCMU member hears an alias at {alias} Hz: {p}");
    }
}
