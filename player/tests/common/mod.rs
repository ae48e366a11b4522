//! The local-store harness the `kubetape` binary's compliance and bundle tests share: a
//! temporary store and keyring, the binary run against them, and sessions written as the
//! gateway writes them (through storage-schema's Recorder, with a commands object).

#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::process::Output;

use storage_schema::commands::CommandEntry;
use storage_schema::session::{Identity, SessionKind, Target};
use storage_schema::store::{Recorder, Store};
use storage_schema::{EventKind, FlushPolicy, Keyring, SessionMeta, Stream};
use test_support::TempStore;

pub const KUBETAPE: &str = env!("CARGO_BIN_EXE_kubetape");

pub struct Env {
    pub temp: TempStore,
    pub store: Store,
    pub keyring: Keyring,
}

impl Env {
    pub fn new() -> Self {
        let temp = TempStore::new();
        let (store, keyring) = (temp.store(), temp.keyring());
        Self {
            temp,
            store,
            keyring,
        }
    }

    pub fn index_dir(&self) -> PathBuf {
        self.temp.root().join("index")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.temp
            .kubetape(KUBETAPE, args)
            .env("KUBETAPE_INDEX", self.index_dir())
            .env("USER", "tester")
            .output()
            .unwrap()
    }

    /// Runs `args`, which must succeed; returns (stdout, stderr).
    pub fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "kubetape {args:?} failed:\n{stdout}\n{stderr}"
        );
        (stdout, stderr)
    }

    /// Runs `args`, which must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubetape {args:?} succeeded:\n{}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// A sealed session of `user` in `namespace` that printed `output` and typed `command`.
    pub async fn session(
        &self,
        user: &str,
        namespace: &str,
        command: &str,
        output: &str,
    ) -> String {
        let meta = SessionMeta::new(
            SessionKind::Exec,
            Identity {
                user: user.into(),
                ..Default::default()
            },
            Target {
                cluster: Some("test".into()),
                namespace: Some(namespace.into()),
                pod: Some("web-0".into()),
                ..Default::default()
            },
            vec!["sh".into()],
            true,
        );
        self.write(meta, command, output, true).await
    }

    pub async fn write(
        &self,
        meta: SessionMeta,
        command: &str,
        output: &str,
        seal: bool,
    ) -> String {
        let recorder = Recorder::start(
            self.store.clone(),
            &self.keyring,
            meta,
            FlushPolicy::default(),
        )
        .await
        .unwrap();
        let id = recorder.session().to_string();
        recorder
            .record(EventKind::Data {
                stream: Stream::Stdout,
                bytes: output.as_bytes().to_vec(),
            })
            .await
            .unwrap();
        if seal {
            let entries = vec![CommandEntry {
                exit_code: Some(0),
                ..CommandEntry::command(1_000, command)
            }];
            recorder.finish_with_commands(None, entries).await.unwrap();
        } else {
            recorder.finish_unsealed().await.unwrap();
        }
        id
    }

    pub fn reads(&self) -> Vec<serde_json::Value> {
        let (stdout, _) = self.ok(&["audit", "--reads", "--json"]);
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
