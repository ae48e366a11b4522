//! `kubetape request`, `requests`, `approve`, `deny`: just-in-time (JIT) access — ask for a
//! requestable role, see requests, decide them — through the gateway's admin API
//! (`/kubetape/v1/requests`, whose bodies are `proto::admin`'s), authenticated as the user with
//! their own kubeconfig (server, CA and the exec credential plugin, exactly as kubectl uses it).
//!
//! The gateway's refusals are Kubernetes `Status` objects; their message is printed as is, since
//! it already says what was wrong (not an approver, your own request, already decided…).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use http::Request;
use proto::admin::{
    AccessRequestList, AccessRequestView, Decision, DecisionBody, NewAccessRequest, REQUESTS_PATH,
};

use crate::stdio::outln;

/// Which gateway, as whom: the kubeconfig kubectl would use.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Kubeconfig whose cluster is the kubetape gateway [default: $KUBECONFIG, ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context [default: the current one]
    #[arg(long)]
    context: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Ask for temporary access to a requestable role in one namespace",
    after_help = "\
Examples:
  kubetape request prod-debug --namespace prod --reason 'INC-42: db is slow' --ttl 30m
  kubetape requests            see its state; an approver runs `kubetape approve ID`"
)]
pub struct RequestArgs {
    /// The role (the gateway's 403 names the requestable ones that would help)
    role: String,
    /// The namespace the grant is for
    #[arg(long, short = 'n')]
    namespace: String,
    /// Why (kept with the grant and every session opened under it)
    #[arg(long)]
    reason: String,
    /// How long the grant lasts once approved, e.g. 30m (at most the role's max_ttl)
    #[arg(long, default_value = "30m")]
    ttl: String,
    /// Print the created request as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Debug, clap::Args)]
#[command(
    about = "List your access requests and those you may approve",
    long_about = "List your access requests and those you may approve: the requests of the last \
        49 hours, which covers every request that can still be decided (24 h) or whose grant can \
        still be running (up to 24 h more). Older ones grant nothing; `kubetape audit` keeps \
        their history."
)]
pub struct RequestsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Debug, clap::Args)]
#[command(about = "Approve someone else's access request (approver groups only)")]
pub struct ApproveArgs {
    /// The request id (from `kubetape requests`)
    id: String,
    /// A note kept with the decision
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Debug, clap::Args)]
#[command(about = "Deny someone else's access request (approver groups only)")]
pub struct DenyArgs {
    /// The request id (from `kubetape requests`)
    id: String,
    /// Why it was denied (shown to the requester)
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    gateway: GatewayArgs,
}

pub async fn request(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let body = NewAccessRequest {
        role: args.role,
        namespace: args.namespace,
        reason: args.reason,
        ttl: args.ttl,
    };
    let body = serde_json::to_vec(&body)?;
    let Some(text) = call(&args.gateway, "POST", REQUESTS_PATH, Some(body)).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let view: AccessRequestView = serde_json::from_str(&text).context("the gateway's answer")?;
    if args.json {
        outln!("{text}")?;
    } else {
        outln!(
            "request {} for role {} in namespace {} ({}) is {}.\nAn approver runs: kubetape approve {}",
            view.id,
            view.role,
            view.namespace,
            view.ttl,
            view.state,
            view.id
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn requests(args: RequestsArgs) -> anyhow::Result<ExitCode> {
    let Some(text) = call(&args.gateway, "GET", REQUESTS_PATH, None).await? else {
        return Ok(ExitCode::FAILURE);
    };
    if args.json {
        outln!("{text}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let list: AccessRequestList = serde_json::from_str(&text).context("the gateway's answer")?;
    if list.requests.is_empty() {
        outln!("no access requests of yours, and none you may decide")?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<36}  {:<8}  {:<24}  {:<14}  {:<12}  {:<6}  {:<20}  REASON",
        "ID",
        "STATE",
        "USER",
        "ROLE",
        "NAMESPACE",
        "TTL",
        "EXPIRES"
    )?;
    for v in &list.requests {
        let state = if v.can_decide {
            format!("{}*", v.state)
        } else {
            v.state.to_string()
        };
        outln!(
            "{:<36}  {:<8}  {:<24}  {:<14}  {:<12}  {:<6}  {:<20}  {}",
            v.id,
            state,
            v.user,
            v.role,
            v.namespace,
            v.ttl,
            v.expires_at.as_deref().unwrap_or("-"),
            v.reason
        )?;
    }
    if list.requests.iter().any(|v| v.can_decide) {
        outln!("\n* you may decide it: kubetape approve ID, or kubetape deny ID --reason TEXT")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn approve(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    decide(&args.gateway, &args.id, Decision::Approve, args.reason).await
}

pub async fn deny(args: DenyArgs) -> anyhow::Result<ExitCode> {
    decide(&args.gateway, &args.id, Decision::Deny, args.reason).await
}

async fn decide(
    gateway: &GatewayArgs,
    id: &str,
    decision: Decision,
    reason: String,
) -> anyhow::Result<ExitCode> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        anyhow::bail!("{id:?} is not a request id (see `kubetape requests`)");
    }
    let path = proto::admin::decision_path(id, decision);
    let body = serde_json::to_vec(&DecisionBody { reason })?;
    let Some(text) = call(gateway, "POST", &path, Some(body)).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let view: AccessRequestView = serde_json::from_str(&text).context("the gateway's answer")?;
    outln!(
        "request {} ({} for role {} in namespace {}) {}{}",
        view.id,
        view.user,
        view.role,
        view.namespace,
        view.state,
        view.expires_at
            .map(|t| format!(" until {t}"))
            .unwrap_or_default()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Sends one admin API call; `None` when the gateway refused it (its message already printed).
async fn call(
    gateway: &GatewayArgs,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Option<String>> {
    let client = client(gateway).await?;
    let mut builder = Request::builder().method(method).uri(path);
    let bytes = match body {
        Some(b) => {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            b
        }
        None => Vec::new(),
    };
    let request = builder.body(bytes).context("build the request")?;
    match client.request_text(request).await {
        Ok(text) => Ok(Some(text)),
        Err(kube::Error::Api(status)) => {
            eprintln!("{}", status.message);
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e).context("cannot reach the kubetape gateway")),
    }
}

async fn client(gateway: &GatewayArgs) -> anyhow::Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context: gateway.context.clone(),
        ..Default::default()
    };
    let config = match &gateway.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .context("kubeconfig")?;
    kube::Client::try_from(config).context("gateway client")
}
