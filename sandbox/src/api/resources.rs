//! get / list / watch for every kind, in the two forms kubectl asks for: plain JSON objects and
//! lists, or `meta.k8s.io/v1` Tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`,
//! what `kubectl get` prints from). Watches stream newline-delimited `WatchEvent`s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::objects::{Item, Kind};
use super::selector::{FieldSelector, LabelSelector};
use crate::cluster::Cluster;
pub(crate) use crate::query::Query;
use crate::respond::{self, Body, Reject};

/// A watch lasts this long unless the client asks otherwise (the API server picks 30–60 min).
const DEFAULT_WATCH: Duration = Duration::from_secs(1800);

/// How the client wants objects rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    Json,
    /// A Table, with row objects as `includeObject` asks.
    Table(Include),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Form {
    pub fn from_request(accept: &str, query: &Query) -> Self {
        if !accept.split(',').any(|a| a.contains("as=Table")) {
            return Form::Json;
        }
        Form::Table(match query.get("includeObject") {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        })
    }
}

/// Which items a list or watch returns.
#[derive(Debug, Clone)]
struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(kind: Kind, namespace: Option<&str>, q: &Query) -> Result<Self, Reject> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(Reject::bad_request)?;
        let fields = match kind.selectable_fields() {
            Some(supported) => {
                FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), supported)
                    .map_err(Reject::bad_request)?
            }
            None => FieldSelector::default(),
        };
        Ok(Self {
            namespace: namespace.map(str::to_string),
            labels,
            fields,
        })
    }

    fn items(&self, kind: Kind, cluster: &Cluster) -> Vec<Item> {
        kind.items(cluster, self.namespace.as_deref())
            .into_iter()
            .filter(|i| self.labels.matches(&i.labels) && self.fields.matches(|f| i.field(f)))
            .collect()
    }
}

fn partial(item: &Item) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": item.object["metadata"],
    })
}

fn table(kind: Kind, items: &[Item], include: Include, resource_version: u64) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|i| {
            let mut row = json!({"cells": i.cells});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial(i),
                Include::Object => row["object"] = i.object.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": kind.columns(),
        "rows": rows,
    })
}

/// `GET .../{resource}/{name}`.
pub(crate) fn get(
    cluster: &Cluster,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
    form: Form,
) -> Response<Body> {
    let found = kind
        .items(cluster, namespace)
        .into_iter()
        .find(|i| i.name == name);
    let Some(item) = found else {
        return respond::object_not_found(kind.resource(), name);
    };
    match form {
        Form::Json => respond::json(StatusCode::OK, &item.object),
        Form::Table(include) => {
            let rv = item.resource_version;
            respond::json(StatusCode::OK, &table(kind, &[item], include, rv))
        }
    }
}

/// `GET .../{resource}`: a list, or a watch with `watch=true` (`kubectl debug`/`wait` narrow
/// both to one object with `fieldSelector=metadata.name=x`).
pub(crate) fn list(
    cluster: &Arc<Cluster>,
    kind: Kind,
    namespace: Option<&str>,
    q: &Query,
    form: Form,
) -> Response<Body> {
    let filter = match Filter::new(kind, namespace, q) {
        Ok(f) => f,
        Err(reject) => return reject.into_response(),
    };
    if q.flag("watch") {
        return watch(cluster, kind, filter, q, form);
    }
    let rv = cluster.version();
    let items = filter.items(kind, cluster);
    let body = match form {
        Form::Table(include) => table(kind, &items, include, rv),
        Form::Json => json!({
            "kind": kind.list_kind(),
            "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items.into_iter().map(|i| i.object).collect::<Vec<_>>(),
        }),
    };
    respond::json(StatusCode::OK, &body)
}

fn watch(
    cluster: &Arc<Cluster>,
    kind: Kind,
    filter: Filter,
    q: &Query,
    form: Form,
) -> Response<Body> {
    let timeout = match q.number("timeoutSeconds") {
        Ok(t) => t.map_or(DEFAULT_WATCH, Duration::from_secs),
        Err(reject) => return reject.into_response(),
    };
    // No resourceVersion (or "0"): start with the current state as ADDED events. A version
    // from a previous list: only what changed after it.
    let since = q
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0);
    let initial_end = q.flag("sendInitialEvents");
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(watch_loop(
        cluster.clone(),
        kind,
        filter,
        form,
        since,
        initial_end,
        timeout,
        tx,
    ));
    let mut resp = Response::new(respond::channel(rx));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn event(kind: Kind, ty: &str, item: &Item, form: Form) -> Bytes {
    let object = match form {
        Form::Json => item.object.clone(),
        Form::Table(include) => table(
            kind,
            std::slice::from_ref(item),
            include,
            item.resource_version,
        ),
    };
    let mut line =
        serde_json::to_vec(&json!({"type": ty, "object": object})).expect("event serializes");
    line.push(b'\n');
    Bytes::from(line)
}

#[allow(clippy::too_many_arguments)]
async fn watch_loop(
    cluster: Arc<Cluster>,
    kind: Kind,
    filter: Filter,
    form: Form,
    since: Option<u64>,
    initial_end: bool,
    timeout: Duration,
    tx: mpsc::Sender<Bytes>,
) {
    let mut changes = cluster.subscribe();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    // Last version sent per object; objects a `since` watcher already knows count as sent.
    let mut sent: HashMap<(Option<String>, String), u64> = HashMap::new();
    let mut first = true;
    loop {
        changes.borrow_and_update();
        let all = kind.items(&cluster, filter.namespace.as_deref());
        let matching = filter.items(kind, &cluster);
        for item in &matching {
            let key = (item.namespace.clone(), item.name.clone());
            let ty = match sent.get(&key).copied().or(since) {
                None => "ADDED",
                Some(v) if item.resource_version > v => "MODIFIED",
                Some(_) => continue,
            };
            sent.insert(key, item.resource_version);
            if tx.send(event(kind, ty, item, form)).await.is_err() {
                return;
            }
        }
        // Objects that stopped matching the selectors leave the watcher's view.
        let gone: Vec<_> = sent
            .keys()
            .filter(|k| !matching.iter().any(|i| i.namespace == k.0 && i.name == k.1))
            .cloned()
            .collect();
        for key in gone {
            sent.remove(&key);
            if let Some(item) = all.iter().find(|i| i.namespace == key.0 && i.name == key.1)
                && tx.send(event(kind, "DELETED", item, form)).await.is_err()
            {
                return;
            }
        }
        if first && initial_end {
            let bookmark = json!({"type": "BOOKMARK", "object": {
                "kind": kind_name(kind), "apiVersion": "v1",
                "metadata": {"resourceVersion": cluster.version().to_string(),
                             "annotations": {"k8s.io/initial-events-end": "true"}},
            }});
            let mut line = serde_json::to_vec(&bookmark).expect("bookmark serializes");
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
        first = false;
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = &mut deadline => return,
            () = tx.closed() => return,
        }
    }
}

fn kind_name(kind: Kind) -> &'static str {
    kind.list_kind().trim_end_matches("List")
}
