//! `apps`: the internal endpoints that terminate media — prompts, music on hold, IVR,
//! voicemail, conferences, recording. Each application is a sans-IO state machine: events in
//! (a digit, the end of a prompt, a timer, `now`), commands out (play, record, connect to a
//! destination, hang up). The engine drives them; the media engine carries out their commands.
//!
//! The file side lives here too: [`prompt`] (the EN/JA catalogue and number composition, pure),
//! [`prompt_files`] (which prompt file plays, uploads, the synthesised default set), [`moh`]
//! (music-on-hold classes and playlists) and [`audio_file`] (upload conversion by `sox`). Those
//! three touch the file system and run packaged tools; the binary, the web API and the media
//! engine's players call them, never the state machines.

#![warn(missing_docs)]

pub mod audio_file;
pub mod conf;
pub mod custom_prompt;
pub mod ivr;
pub mod moh;
pub mod prompt;
pub mod prompt_files;
pub mod prompt_rec;
pub mod vmail;
