//! `petitlab serve`: the embedded HTTP and TFTP servers over the lab's
//! roots, with one access-log line per request, until interrupted.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use petitlab::engine::agent_api::AgentApi;
use petitlab::engine::boot_record::{self, Recorder};
use petitlab::engine::lab::Engine;
use petitlab::engine::store::Store;
use petitlab::inventory::Lab;
use petitlab::serve::http::{HttpOptions, HttpServer};
use petitlab::serve::tftp::{TftpOptions, TftpServer};

use super::out::{outln, safe};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    Http,
    Tftp,
    /// HTTP (with the agent API) and TFTP, without the lab service: the
    /// CLI and dashboards then run their actions in process.
    Files,
}

pub struct Options {
    pub http: Option<SocketAddr>,
    pub tftp: Option<SocketAddr>,
    pub only: Option<Only>,
}

/// Source address → node name, so log lines say which node fetched what.
fn node_names(lab: &Lab) -> Arc<HashMap<IpAddr, String>> {
    let names = lab
        .nodes
        .iter()
        .filter_map(|n| n.ipv4.map(|ip| (IpAddr::V4(ip), n.name.clone())))
        .collect();
    Arc::new(names)
}

fn create_root(root: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))
}

/// The running servers.
pub struct Servers {
    http: Option<petitlab::serve::http::HttpHandle>,
    tftp: Option<petitlab::serve::tftp::TftpHandle>,
}

impl Servers {
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(h) = self.http {
            h.shutdown(Duration::from_secs(5)).await;
        }
        if let Some(t) = self.tftp {
            t.shutdown().await?;
        }
        Ok(())
    }
}

/// Bare file serving: the servers until interrupted.
pub async fn run(lab: &Lab, opts: Options) -> anyhow::Result<ExitCode> {
    // The servers size their caps from the descriptor limit: use all the
    // hard limit allows rather than a soft 1024.
    petitlab::serve::limits::raise_descriptor_limit();
    // The deploy agent API records into the lab's store, where the
    // process running each deploy (`petitlab deploy`, the TUI) reads it.
    let store = match opts.only {
        Some(Only::Tftp) => None,
        _ => Some(Arc::new(Mutex::new(Store::open(&Engine::store_path(lab))?))),
    };
    let servers = start(lab, &opts, store, None).await?;
    outln!("petitlab serve: running; Ctrl-C stops");
    super::wait_for_stop().await?;
    servers.shutdown().await?;
    outln!("petitlab serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Starts HTTP (with the agent API on `store`) and TFTP, as `opts` says;
/// with a `recorder`, the nodes' fetches and agent calls go into their boot
/// timelines.
pub async fn start(
    lab: &Lab,
    opts: &Options,
    store: Option<Arc<Mutex<Store>>>,
    recorder: Option<Arc<Recorder>>,
) -> anyhow::Result<Servers> {
    let names = node_names(lab);
    let mut http = None;
    if opts.only != Some(Only::Tftp) {
        create_root(&lab.http.root)?;
        let names = names.clone();
        let store = match store {
            Some(store) => store,
            None => Arc::new(Mutex::new(Store::open(&Engine::store_path(lab))?)),
        };
        let mut api = AgentApi::new(Arc::new(lab.clone()), store);
        if let Some(recorder) = &recorder {
            api = api.with_recorder(recorder.clone());
        }
        let timeline = recorder.clone().map(boot_record::http_hook);
        let options = HttpOptions {
            api: Some(Arc::new(api)),
            // A record quotes what the client sent: one line, escaped whole.
            access_log: Some(Arc::new(move |record| {
                outln!("http {}", safe(&record.to_string()));
                if let Some(timeline) = &timeline {
                    timeline(record);
                }
            })),
            node_resolver: Some(Arc::new(move |ip| names.get(&ip).cloned())),
            ..HttpOptions::default()
        };
        let listen = opts.http.unwrap_or(lab.http.listen);
        let server = HttpServer::bind(listen, lab.http.root.clone(), options).await?;
        outln!(
            "petitlab serve: HTTP on {} from {} (nodes use {})",
            server.local_addr(),
            lab.http.root.display(),
            lab.http.base_url.as_deref().unwrap_or("no base_url set")
        );
        http = Some(server.spawn());
    }
    let mut tftp = None;
    if opts.only != Some(Only::Http) {
        create_root(&lab.tftp.root)?;
        let timeline = recorder.map(boot_record::tftp_hook);
        let options = TftpOptions {
            log: Some(Arc::new(move |record| {
                let node = names.get(&record.peer.ip()).map_or("-", String::as_str);
                outln!("tftp {node} {}", safe(&record.to_string()));
                if let Some(timeline) = &timeline {
                    timeline(record);
                }
            })),
            ..TftpOptions::default()
        };
        let listen = opts.tftp.unwrap_or(lab.tftp.listen);
        let server = TftpServer::bind(listen, lab.tftp.root.clone(), options)?;
        outln!(
            "petitlab serve: TFTP on {} from {} (nodes use {})",
            server.local_addr(),
            lab.tftp.root.display(),
            lab.tftp.base_url.as_deref().unwrap_or("no base_url set")
        );
        tftp = Some(server.spawn());
    }
    Ok(Servers { http, tftp })
}
