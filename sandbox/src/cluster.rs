//! The cluster's state: pods from the configuration, each container with its main process, and
//! a resource version that moves when anything changes (so watches can report it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::{ContainerSpec, ImageSpec, PodSpec, SandboxConfig};
use crate::container::MainProcess;
use crate::portserver::ForwardPort;

/// Every pod, in configuration order.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// Configured pods, then those created through the API.
    pods: RwLock<Vec<Arc<Pod>>>,
    /// Namespaces: those of the pods plus `default`, sorted.
    pub namespaces: Vec<String>,
    pub created: SystemTime,
    pub kubernetes_version: String,
    /// Container images mapped to local programs.
    pub images: Vec<ImageSpec>,
    /// The latest resource version; bumped (and watchers woken) on every change.
    version: watch::Sender<u64>,
}

#[derive(Debug)]
pub(crate) struct Pod {
    pub spec: PodSpec,
    pub uid: String,
    pub created: SystemTime,
    pub containers: Vec<Arc<Container>>,
    /// Every container's declared ports and where their servers listen.
    pub ports: Vec<ForwardPort>,
    /// Debug containers added through `pods/ephemeralcontainers`, in order.
    ephemeral: Mutex<Vec<Ephemeral>>,
    /// For a pod created through the API: the object as sent (its fields the sandbox does not
    /// model are shown back as they were).
    pub submitted: Option<serde_json::Value>,
    resource_version: Arc<AtomicU64>,
    /// The cluster's version, bumped when this pod changes.
    version: watch::Sender<u64>,
}

/// An ephemeral container: its spec as the API shows it and, unless its image maps to no local
/// program, its process.
#[derive(Debug, Clone)]
pub(crate) struct Ephemeral {
    pub name: String,
    /// The container object in `spec.ephemeralContainers` (with the API server's defaults).
    pub object: serde_json::Value,
    pub container: Option<Arc<Container>>,
    /// Why it is not running (`ImagePullBackOff`).
    pub waiting: Option<String>,
    pub started: SystemTime,
}

#[derive(Debug)]
pub(crate) struct Container {
    pub spec: ContainerSpec,
    /// `sandbox://<hex>`, as `containerID` reads in pod status.
    pub id: String,
    pub main: MainProcess,
}

impl Cluster {
    /// Creates the pods and starts every container's main process.
    pub fn start(config: &SandboxConfig) -> Arc<Self> {
        let now = SystemTime::now();
        let (version, _) = watch::channel(config.pods.len() as u64);
        let pods = config
            .pods
            .iter()
            .enumerate()
            .map(|(i, spec)| Arc::new(Pod::start(spec, None, i as u64 + 1, &version, now)))
            .collect();
        let mut namespaces: Vec<String> = config.pods.iter().map(|p| p.namespace.clone()).collect();
        namespaces.push("default".into());
        namespaces.sort();
        namespaces.dedup();
        Arc::new(Self {
            pods: RwLock::new(pods),
            namespaces,
            created: now,
            kubernetes_version: config.kubernetes_version.clone(),
            images: config.images.clone(),
            version,
        })
    }

    /// Every pod, in creation order.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|p| p.spec.namespace == namespace && p.spec.name == name)
            .cloned()
    }

    /// Starts a pod created through the API (`submitted` is its spec as sent, kept for the
    /// fields the sandbox does not model). `Err` with the existing pod if the name is taken.
    pub fn create_pod(&self, spec: PodSpec, submitted: serde_json::Value) -> Result<Arc<Pod>, ()> {
        let mut pods = self.pods.write().unwrap_or_else(|p| p.into_inner());
        if pods
            .iter()
            .any(|p| p.spec.namespace == spec.namespace && p.spec.name == spec.name)
        {
            return Err(());
        }
        let rv = *self.version.borrow() + 1;
        let pod = Arc::new(Pod::start(
            &spec,
            Some(submitted),
            rv,
            &self.version,
            SystemTime::now(),
        ));
        pods.push(pod.clone());
        drop(pods);
        self.version.send_modify(|v| *v = (*v).max(rv));
        Ok(pod)
    }

    /// The current resource version.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Kills every pod process (their process groups).
    pub fn stop(&self) {
        for pod in self.pods() {
            for c in &pod.containers {
                c.main.stop();
            }
            for e in pod.ephemeral() {
                if let Some(c) = e.container {
                    c.main.stop();
                }
            }
            for p in &pod.ports {
                p.stop();
            }
        }
    }

    /// A receiver woken on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

impl Pod {
    /// Starts a pod's containers and port servers.
    fn start(
        spec: &PodSpec,
        submitted: Option<serde_json::Value>,
        resource_version: u64,
        version: &watch::Sender<u64>,
        created: SystemTime,
    ) -> Self {
        let resource_version = Arc::new(AtomicU64::new(resource_version));
        let containers = spec
            .containers
            .iter()
            .map(|c| {
                let (version, rv) = (version.clone(), resource_version.clone());
                let on_exit = move || {
                    // A container ended: the pod changed.
                    version.send_modify(|v| {
                        *v += 1;
                        rv.store(*v, Ordering::SeqCst);
                    });
                };
                let span = tracing::info_span!("container", pod = %spec.name, container = %c.name);
                let _enter = span.enter();
                Arc::new(Container {
                    spec: c.clone(),
                    id: format!("sandbox://{}", uuid::Uuid::new_v4().simple()),
                    main: MainProcess::start(c, container_env(spec, c, c.tty), on_exit),
                })
            })
            .collect();
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| {
                let env = container_env(spec, c, false);
                c.ports
                    .iter()
                    .map(move |p| ForwardPort::start(p, &env, c.workdir()))
            })
            .collect();
        Pod {
            spec: spec.clone(),
            uid: uuid::Uuid::new_v4().to_string(),
            created,
            containers,
            ports,
            ephemeral: Mutex::new(Vec::new()),
            submitted,
            resource_version,
            version: version.clone(),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version.load(Ordering::SeqCst)
    }

    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers
            .iter()
            .find(|c| c.spec.name == name)
            .map(|c| &**c)
    }

    /// A container or a running ephemeral container by name (exec, attach and logs reach both).
    pub fn find(&self, name: &str) -> Option<Arc<Container>> {
        self.containers
            .iter()
            .find(|c| c.spec.name == name)
            .cloned()
            .or_else(|| {
                self.ephemeral()
                    .into_iter()
                    .find(|e| e.name == name)
                    .and_then(|e| e.container)
            })
    }

    /// The ephemeral containers so far.
    pub fn ephemeral(&self) -> Vec<Ephemeral> {
        self.ephemeral
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts an ephemeral container (validated by the caller) and reports the pod changed.
    /// `argv` is the local program (`None`: its image maps to none; it waits forever, as for an
    /// image that cannot be pulled).
    pub fn add_ephemeral(
        &self,
        name: String,
        object: serde_json::Value,
        spec: Option<ContainerSpec>,
        waiting: Option<String>,
    ) {
        let container = spec.map(|c| {
            let (version, rv) = (self.version.clone(), self.resource_version.clone());
            let on_exit = move || {
                version.send_modify(|v| {
                    *v += 1;
                    rv.store(*v, Ordering::SeqCst);
                });
            };
            let span = tracing::info_span!("ephemeral", pod = %self.spec.name, container = %c.name);
            let _enter = span.enter();
            Arc::new(Container {
                id: format!("sandbox://{}", uuid::Uuid::new_v4().simple()),
                main: MainProcess::start(&c, container_env(&self.spec, &c, c.tty), on_exit),
                spec: c,
            })
        });
        self.ephemeral
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Ephemeral {
                name,
                object,
                container,
                waiting,
                started: SystemTime::now(),
            });
        self.bump();
    }

    /// Marks the pod changed: a new resource version, watchers woken.
    pub fn bump(&self) {
        let rv = self.resource_version.clone();
        self.version.send_modify(|v| {
            *v += 1;
            rv.store(*v, Ordering::SeqCst);
        });
    }

    /// The pod sandbox id a CRI runtime reports (64 hex digits), derived from the uid.
    pub fn sandbox_id(&self) -> String {
        let simple = self.uid.replace('-', "");
        simple.repeat(2)
    }
}

/// The environment of a container's processes: nothing from the sandbox's own environment but
/// `PATH` (and `HOME` pointing at the workdir), like a container image would set.
pub(crate) fn container_env(pod: &PodSpec, c: &ContainerSpec, tty: bool) -> Vec<(String, String)> {
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut env = vec![
        ("PATH".to_string(), path),
        ("HOSTNAME".to_string(), pod.name.clone()),
        ("POD_NAMESPACE".to_string(), pod.namespace.clone()),
        ("POD_NAME".to_string(), pod.name.clone()),
        ("HOME".to_string(), c.workdir().display().to_string()),
    ];
    if tty {
        // What container runtimes set for a terminal.
        env.push(("TERM".to_string(), "xterm".to_string()));
    }
    for (k, v) in &c.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    env
}
