//! `kubetape audit --reads`: the chain-of-custody log — who read which recording, when, how and
//! why (`storage_schema::store::reads`).

use std::process::ExitCode;

use storage_schema::store::{Store, reads};

use crate::format;
use crate::stdio::outln;

/// Which entries to show.
#[derive(Debug, Default)]
pub struct Filter {
    pub since_us: Option<u64>,
    /// The reader's name or login.
    pub user: Option<String>,
}

pub async fn run(store: &Store, filter: Filter, json: bool) -> anyhow::Result<ExitCode> {
    let (shown, bad) = collect(store, &filter).await?;
    if json {
        for e in &shown {
            outln!("{}", serde_json::to_string(e)?)?;
        }
    } else if shown.is_empty() {
        eprintln!(
            "kubetape: no reading of a recording is logged in {}",
            store.url()
        );
    } else {
        let mut rows = vec![
            [
                "TIME (UTC)",
                "READER",
                "LOGIN",
                "ACTION",
                "SESSION",
                "ID",
                "REASON",
            ]
            .map(String::from),
        ];
        for e in &shown {
            rows.push([
                format::timestamp_us(e.at_us),
                e.reader.clone(),
                format!("{}@{}", e.os_user, e.host),
                e.action.clone(),
                e.session.to_string(),
                e.session.short(),
                e.reason.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        for line in format::table(&rows) {
            outln!("{line}")?;
        }
    }
    Ok(if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The entries matching `filter`, oldest first, and the unreadable ones (each said on stderr):
/// what `audit --reads` shows and what `report` includes.
pub(crate) async fn collect(
    store: &Store,
    filter: &Filter,
) -> anyhow::Result<(Vec<reads::ReadEntry>, Vec<String>)> {
    let mut bad = Vec::new();
    let mut shown = Vec::new();
    for entry in reads::list(store, filter.since_us).await? {
        match entry {
            Ok(e) => {
                if filter
                    .user
                    .as_ref()
                    .is_none_or(|u| &e.reader == u || &e.os_user == u)
                {
                    shown.push(e);
                }
            }
            Err(e) => {
                eprintln!("kubetape: an unreadable reads-log entry: {e}");
                bad.push(format!("an unreadable reads-log entry: {e}"));
            }
        }
    }
    shown.sort_by_key(|e| e.at_us);
    Ok((shown, bad))
}
