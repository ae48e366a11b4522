//! Where recordings and keys are: the global `--store` and `--keys` options, their environment
//! variables and defaults (shared with the gateway through `storage_schema::defaults`, so every
//! binary finds the same recordings), and opening them with errors that tell the user what to do.

use std::path::PathBuf;

use anyhow::Context;
use storage_schema::Keyring;
use storage_schema::store::Store;

#[derive(Debug, clap::Args)]
pub struct Global {
    /// Where recordings are stored: file:///dir, a plain directory path, or s3://bucket/prefix
    /// (credentials from the AWS_* variables) [default: file://$XDG_DATA_HOME/kubetape/store,
    /// i.e. ~/.local/share/kubetape/store]
    #[arg(long, global = true, env = "KUBETAPE_STORE", value_name = "URL")]
    store: Option<String>,

    /// Keyring directory: key-encryption keys and signing keys [default:
    /// $XDG_CONFIG_HOME/kubetape/keys, i.e. ~/.config/kubetape/keys]
    #[arg(long, global = true, env = "KUBETAPE_KEYS", value_name = "DIR")]
    keys: Option<PathBuf>,
}

impl Global {
    /// The store URL; a relative path is made absolute so the URL recorded and printed is one
    /// that still works from another directory.
    pub fn store_url(&self) -> anyhow::Result<String> {
        match &self.store {
            Some(url) if url.contains("://") => Ok(url.clone()),
            Some(path) => Ok(format!("file://{}", std::path::absolute(path)?.display())),
            None => Ok(storage_schema::defaults::store_url()),
        }
    }

    pub fn open_store(&self) -> anyhow::Result<Store> {
        let url = self.store_url()?;
        Ok(Store::open(&url)?)
    }

    pub fn keys_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.keys {
            Some(dir) => Ok(std::path::absolute(dir)?),
            None => Ok(storage_schema::defaults::keys_dir()),
        }
    }

    /// Opens the keyring for reading recordings; never creates one, because a new keyring could
    /// not read anything already recorded and would only hide a wrong `--keys`.
    pub fn open_keyring(&self) -> anyhow::Result<Keyring> {
        let dir = self.keys_dir()?;
        Keyring::open(&dir).with_context(|| {
            format!(
                "cannot open the keyring in {} (point --keys or KUBETAPE_KEYS at the keyring the recordings were made \
                 with; `kubetape keys init` creates a new one, for new recordings)",
                dir.display()
            )
        })
    }

    /// Opens the keyring for recording, creating it on first use, and says so once: losing a
    /// keyring loses every recording made with it.
    pub fn open_or_init_keyring(&self) -> anyhow::Result<(Keyring, bool)> {
        let dir = self.keys_dir()?;
        let (ring, created) = Keyring::open_or_init(&dir)
            .with_context(|| format!("cannot open or create the keyring in {}", dir.display()))?;
        if created {
            announce_new_keyring(&ring)?;
        }
        Ok((ring, created))
    }
}

fn announce_new_keyring(ring: &Keyring) -> anyhow::Result<()> {
    eprintln!(
        "kubetape: created a new keyring in {} (key-encryption key {}, signing key {}); keep it safe: without it \
         recordings cannot be read",
        ring.dir().display(),
        ring.current_kek()?.id(),
        ring.current_signing_key()?.id()
    );
    Ok(())
}
