//! `denwa prompt ...` and `denwa moh ...` end to end, with the real espeak-ng and sox
//! (scripts/test-deps.sh installs them): the default set is synthesised (a subset here, the
//! whole catalogue in its own test), recorded in SOURCES.json, cached on a second run, listed
//! with where each file came from; uploads replace prompts and reset brings the default back.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn denwa(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_denwa"))
        .args(args)
        .args(["--data-dir", &dir.display().to_string()])
        .output()
        .expect("run denwa")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = denwa(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).expect("JSON output")
}

fn listed<'a>(list: &'a Value, id: &str, lang: &str) -> &'a Value {
    list.as_array()
        .expect("array")
        .iter()
        .find(|e| e["id"] == id && e["lang"] == lang)
        .unwrap_or_else(|| panic!("{id}/{lang} not listed"))
}

/// Loudest sample of a 16 kHz mono WAV, and its length in seconds.
fn peak_and_seconds(path: &str) -> (u16, f64) {
    let w = media::wav::read_file(path).expect("16-bit mono WAV");
    assert_eq!(w.sample_rate, 16_000, "{path}");
    let peak = w
        .samples
        .iter()
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap_or(0);
    (peak, w.samples.len() as f64 / 16_000.0)
}

#[test]
fn install_defaults_list_upload_and_reset() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    let ids = ["goodbye", "vm-enter-pin", "num-300", "ctr-ken"];
    let mut args = vec!["prompt", "install-defaults", "--json"];
    for id in &ids {
        args.extend(["--id", id]);
    }
    let r = json(d, &args);
    assert_eq!(r["synthesised"], 8, "{r}");
    assert_eq!(r["failed"].as_array().map(Vec::len), Some(0), "{r}");
    // A second run makes nothing again.
    let again = json(d, &args);
    assert_eq!(
        (again["synthesised"].as_u64(), again["cached"].as_u64()),
        (Some(0), Some(8))
    );

    let sources: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("prompts/default/SOURCES.json")).expect("SOURCES.json"),
    )
    .expect("JSON");
    let entries = sources["prompts"].as_array().expect("prompts");
    assert_eq!(entries.len(), 8);
    let ja = entries
        .iter()
        .find(|e| e["id"] == "vm-enter-pin" && e["lang"] == "ja")
        .expect("ja entry");
    assert_eq!(ja["engine"], "espeak-ng");
    assert_eq!(ja["voice"], "ja");
    assert_eq!(
        ja["text"],
        "暗証番号を入力し、最後にシャープを押してください。"
    );
    assert!(ja["spoken"].as_str().unwrap().starts_with("あんしょう"));
    let wav = d.join("prompts/default/ja/vm-enter-pin.wav");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&wav).expect("wav")))
    };
    assert_eq!(ja["sha256"], sha.as_str());

    let list = json(d, &["prompt", "list", "--json"]);
    let n = list.as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(n, 2 * apps::prompt::CATALOGUE.len());
    for id in &ids {
        for lang in ["en", "ja"] {
            let e = listed(&list, id, lang);
            assert_eq!(e["source"], "default-tts", "{e}");
            let (peak, secs) = peak_and_seconds(e["path"].as_str().expect("path"));
            assert!(
                peak > 10_000,
                "{id}/{lang}: peak {peak} (normalised to -3 dBFS)"
            );
            assert!((0.2..10.0).contains(&secs), "{id}/{lang}: {secs} s");
        }
    }
    assert_eq!(listed(&list, "conf-left", "en")["source"], "missing");
    let only_ja = json(d, &["prompt", "list", "--lang", "ja", "--json"]);
    assert!(
        only_ja
            .as_array()
            .expect("array")
            .iter()
            .all(|e| e["lang"] == "ja")
    );
    let table = ok(d, &["prompt", "list", "--lang", "en"]);
    assert!(table.contains("goodbye"), "{table}");
    assert!(table.contains("prompt file(s) missing"), "{table}");

    // Upload an Ogg Vorbis made by sox: it replaces the Japanese prompt for the tenant.
    let ogg = d.join("mine.ogg");
    let st = Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2"])
        .arg(&ogg)
        .args(["synth", "2", "sine", "500", "vol", "0.5"])
        .status()
        .expect("sox");
    assert!(st.success());
    let out = ok(
        d,
        &[
            "prompt",
            "upload",
            "vm-enter-pin",
            "--lang",
            "ja",
            ogg.to_str().expect("path"),
        ],
    );
    assert!(out.contains("replaced"), "{out}");
    let e = listed(
        &json(d, &["prompt", "list", "--json"]),
        "vm-enter-pin",
        "ja",
    )
    .clone();
    assert_eq!(e["source"], "uploaded");
    assert!((e["duration_s"].as_f64().expect("duration") - 2.0).abs() < 0.05);
    // A garbage file is refused with the reason, naming the file; nothing changes.
    let junk = d.join("junk.mp3");
    std::fs::write(&junk, b"<html>not audio</html>").expect("write");
    let o = denwa(
        d,
        &[
            "prompt",
            "upload",
            "goodbye",
            "--lang",
            "en",
            junk.to_str().expect("path"),
        ],
    );
    assert!(!o.status.success());
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(
        msg.contains("junk.mp3: not a recognised audio file"),
        "{msg}"
    );
    let o = denwa(
        d,
        &[
            "prompt",
            "upload",
            "nope",
            "--lang",
            "en",
            ogg.to_str().expect("path"),
        ],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown prompt"));
    let o = denwa(d, &["prompt", "list", "--tenant", "42"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no tenant with id 42"));
    let o = denwa(d, &["prompt", "list", "--lang", "fr"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown language"));

    let out = ok(d, &["prompt", "reset", "vm-enter-pin", "--lang", "ja"]);
    assert!(out.contains("the default plays again"), "{out}");
    let e = listed(
        &json(d, &["prompt", "list", "--json"]),
        "vm-enter-pin",
        "ja",
    )
    .clone();
    assert_eq!(e["source"], "default-tts");
    let o = denwa(d, &["prompt", "reset", "vm-enter-pin", "--lang", "ja"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no replacement"));
}

#[test]
fn music_on_hold_commands() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    assert!(ok(d, &["moh", "install-default"]).contains("wrote"));
    assert!(ok(d, &["moh", "install-default"]).contains("is there"));
    let l = json(d, &["moh", "list", "--json"]);
    assert_eq!(l[0]["name"], "default");
    assert_eq!(l[0]["scope"], "default");
    let secs = l[0]["files"][0]["duration_s"].as_f64().expect("seconds");
    assert!((28.0..=35.0).contains(&secs), "{secs}");

    let flac = d.join("Waltz No 2.flac");
    let st = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "2"])
        .arg(&flac)
        .args(["synth", "3", "pluck", "C4", "vol", "0.5"])
        .status()
        .expect("sox");
    assert!(st.success());
    let out = ok(d, &["moh", "add", "classics", flac.to_str().expect("path")]);
    assert!(out.contains("waltz-no-2.wav"), "{out}");
    let l = json(d, &["moh", "list", "--json"]);
    assert_eq!(l[0]["name"], "classics");
    assert_eq!(l[0]["scope"], "tenant");
    let table = ok(d, &["moh", "list"]);
    assert!(table.contains("classics (tenant, 1 file(s))"), "{table}");
    let o = denwa(d, &["moh", "add", "Bad Name", flac.to_str().expect("path")]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("class names are"));
    assert!(ok(d, &["moh", "remove", "classics", "waltz-no-2.wav"]).contains("removed"));
    assert!(ok(d, &["moh", "remove", "classics"]).contains("removed class classics"));
    let o = denwa(d, &["moh", "remove", "default"]);
    assert!(!o.status.success(), "the installed class stays");
}

/// The whole catalogue in both languages: every text synthesises to a non-silent file (this
/// is what ./scripts/run.sh does on a fresh install). Prints the time it took.
#[test]
fn the_whole_default_set_synthesises() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    let r = json(d, &["prompt", "install-defaults", "--json"]);
    println!("full default set: {r}");
    assert_eq!(r["failed"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(
        r["synthesised"].as_u64(),
        Some(2 * apps::prompt::CATALOGUE.len() as u64)
    );
    for e in json(d, &["prompt", "list", "--json"])
        .as_array()
        .expect("array")
    {
        assert_eq!(e["source"], "default-tts", "{e}");
        let (peak, secs) = peak_and_seconds(e["path"].as_str().expect("path"));
        assert!(peak > 10_000 && secs > 0.15, "{e}: peak {peak}, {secs} s");
    }
}
