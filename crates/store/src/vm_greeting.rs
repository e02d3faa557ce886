//! A mailbox greeting (unavailable, busy, name) set from a file: converted by the same path as
//! prompt uploads (`apps::audio_file::decode`), written where the phone path keeps it
//! (`engine::vm::greeting_path`) and flagged in the box's settings. Used by the CLI
//! (`denwa voicemail greeting`), the API and the panel alike.

use std::path::Path;

use apps::audio_file::{self, ConvertError};
use apps::vmail::Greeting;

use crate::{Error, Result, Store};

/// Why a greeting upload failed.
#[derive(Debug, thiserror::Error)]
pub enum GreetingError {
    /// The file was refused (the reason is for people).
    #[error(transparent)]
    Refused(#[from] ConvertError),
    /// The database refused or failed (no such mailbox …).
    #[error(transparent)]
    Store(#[from] Error),
}

impl Store {
    /// Converts `file` and makes it mailbox `ext`'s `greeting`; returns its length in seconds.
    /// A refused file changes nothing.
    pub async fn upload_vm_greeting(
        &self,
        data_dir: &Path,
        tenant_id: i64,
        ext: &str,
        greeting: Greeting,
        file: &Path,
    ) -> std::result::Result<f64, GreetingError> {
        if self.vm_box(tenant_id, ext).await?.is_none() {
            return Err(Error::NotFound(format!("extension {ext}")).into());
        }
        let path = data_dir.join(engine::vm::greeting_path(tenant_id, ext, greeting));
        let f = file.to_path_buf();
        let seconds = tokio::task::spawn_blocking(move || {
            let c = audio_file::decode(&f)?;
            audio_file::write_wav(&path, &c.samples)?;
            Ok::<f64, ConvertError>(c.seconds())
        })
        .await
        .map_err(|e| Error::Io {
            path: file.to_path_buf(),
            source: std::io::Error::other(format!("conversion task failed: {e}")),
        })??;
        self.set_vm_greeting(tenant_id, ext, greeting, true).await?;
        Ok(seconds)
    }

    /// Removes mailbox `ext`'s `greeting` (the default greeting plays again).
    pub async fn remove_vm_greeting(
        &self,
        data_dir: &Path,
        tenant_id: i64,
        ext: &str,
        greeting: Greeting,
    ) -> Result<()> {
        self.set_vm_greeting(tenant_id, ext, greeting, false)
            .await?;
        let path = data_dir.join(engine::vm::greeting_path(tenant_id, ext, greeting));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }
}
