//! `kubetape seal`: closes a session whose recorder died, so that it reads as complete-but-
//! interrupted rather than possibly still live.

use std::process::ExitCode;

use storage_schema::store::{VerifyError, seal_interrupted};

use crate::config::Global;
use crate::stdio::outln;
use crate::{format, resolve};

const ABOUT: &str = "Seal a session whose recorder died, as interrupted";

const LONG_ABOUT: &str = "\
Seal an open session whose recorder died (killed, crashed, machine lost) as `interrupted`.

The whole session is verified and decrypted first; a damaged session is refused, and so is one
that is already sealed. The seal is signed with the key the session was recorded with, so the
keyring it was recorded with is needed. Do not seal a session that is still being recorded: its
recorder could then not seal it itself.";

const AFTER_HELP: &str = "\
Examples:
  kubetape ls                  find sessions in state `open`
  kubetape seal 4f1c2a9b";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// The session: a full id or a unique prefix
    session: String,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = global.open_store()?;
    let keyring = global.open_keyring()?;
    let id = resolve::session(&store, &args.session).await?;
    match seal_interrupted(&store, &keyring, id).await {
        Ok(seal) => {
            outln!(
                "sealed session {id} as interrupted: {} chunks, {} of output, last event at {}",
                seal.chunks,
                format::bytes(seal.bytes.stdout + seal.bytes.stderr),
                format::duration_us(seal.duration_us)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ VerifyError::AlreadySealed(..)) => {
            eprintln!("kubetape: {e}; nothing to do");
            Ok(ExitCode::FAILURE)
        }
        Err(e @ VerifyError::Damaged(..)) => {
            eprintln!("kubetape: {e}\n(`kubetape verify {id}` shows the full report)");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
