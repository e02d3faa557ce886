//! `apps`: the internal endpoints that terminate media — prompts, music on hold, IVR,
//! voicemail, conferences, recording. Each application is a sans-IO state machine: events in
//! (a digit, the end of a prompt, a timer, `now`), commands out (play, record, connect to a
//! destination, hang up). The engine drives them; the media engine carries out their commands.

#![warn(missing_docs)]

pub mod audio_file;
pub mod ivr;
pub mod moh;
pub mod prompt;
pub mod prompt_files;
