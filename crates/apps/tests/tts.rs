//! The Japanese readings against the real espeak-ng (package espeak-ng): every reading is
//! spoken as Japanese. espeak-ng switches to English to say "Chinese letter" or "Japanese
//! letter" for characters its `ja` voice cannot read (kanji, some katakana, stray symbols);
//! such a switch shows as `(en)` in its phoneme output, and a prompt containing it would say
//! those words to callers.

use std::io::Write;
use std::process::{Command, Stdio};

use apps::prompt::{CATALOGUE, Lang};
use apps::prompt_files::tts_voice;

fn phonemes(voice: &str, text: &str) -> String {
    let mut child = Command::new("espeak-ng")
        .args(["-q", "-x", "-b", "1", "-v", voice])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run espeak-ng (scripts/test-deps.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("espeak-ng output");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_reading_is_spoken_in_its_own_language() {
    for p in CATALOGUE {
        for lang in Lang::ALL {
            let ph = phonemes(tts_voice(lang), p.spoken(lang));
            assert!(!ph.trim().is_empty(), "{} {lang}: nothing spoken", p.id);
            assert!(
                !ph.contains("(en)") && !ph.contains("(zh") && !ph.contains("(ja)"),
                "{} {lang}: {:?} switches language: {ph}",
                p.id,
                p.spoken(lang)
            );
        }
    }
}

#[test]
fn the_check_catches_what_espeak_cannot_read() {
    // Kanji, and katakana mixed with other kana, are spelled out in English ("Chinese letter",
    // "Japanese letter"): the test above would fail on them.
    assert!(phonemes("ja", "留守番電話").contains("(en)"));
    assert!(phonemes("ja", "シャープを押して").contains("(en)"));
}
