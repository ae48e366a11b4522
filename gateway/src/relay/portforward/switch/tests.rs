//! The switch between a client and a cluster, both played by `proto`'s own port-forward ends:
//! a `Client` as kubectl, a `Server` as kubelet.

use proto::spdy::frame::{RST_CANCEL, RST_REFUSED_STREAM};
use proto::spdy::portforward::{Client, ClientEvent, Server, ServerEvent};

use super::*;
use crate::policy::{Capture, PortRange};

fn scope(ports: &[u16], capture: Capture) -> ForwardScope {
    ForwardScope {
        ports: Some(
            ports
                .iter()
                .map(|&p| PortRange { first: p, last: p })
                .collect(),
        ),
        capture,
    }
}

/// kubectl, the switch and kubelet, moving bytes until all three are quiet.
struct Rig {
    kubectl: Client,
    switch: Switch,
    kubelet: Server,
    /// What kubectl and kubelet saw, and the switch noted.
    seen_by_kubectl: Vec<ClientEvent>,
    seen_by_kubelet: Vec<ServerEvent>,
    notes: Vec<Note>,
}

impl Rig {
    fn new(ports: &[u16], capture: Capture) -> Self {
        Self {
            kubectl: Client::new(),
            switch: Switch::spdy(
                scope(ports, capture),
                capture == Capture::Full,
                "rule 1".into(),
            ),
            kubelet: Server::new(),
            seen_by_kubectl: Vec::new(),
            seen_by_kubelet: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn pump(&mut self) {
        loop {
            let to_switch = self.kubectl.take_output();
            let to_kubelet = self.switch.take_upstream_output();
            let to_kubectl: Vec<u8> = self.switch.take_client_output().concat();
            let from_kubelet = self.kubelet.take_output();
            self.notes.extend(self.switch.take_notes());
            if to_switch.is_empty()
                && to_kubelet.is_empty()
                && to_kubectl.is_empty()
                && from_kubelet.is_empty()
            {
                return;
            }
            self.switch.on_client_bytes(&to_switch).unwrap();
            self.seen_by_kubelet
                .extend(self.kubelet.receive(&to_kubelet).unwrap());
            self.seen_by_kubectl
                .extend(self.kubectl.receive(&to_kubectl).unwrap());
            self.switch.on_upstream_bytes(&from_kubelet).unwrap();
        }
    }

    fn take(&mut self) -> (Vec<ClientEvent>, Vec<ServerEvent>, Vec<Note>) {
        (
            std::mem::take(&mut self.seen_by_kubectl),
            std::mem::take(&mut self.seen_by_kubelet),
            std::mem::take(&mut self.notes),
        )
    }
}

fn ended(notes: &[Note]) -> Vec<(u64, ForwardOutcome, String)> {
    notes
        .iter()
        .filter_map(|n| match n {
            Note::Ended(e) => Some((e.conn, e.outcome, e.message.clone())),
            _ => None,
        })
        .collect()
}

fn bytes_of(notes: &[Note], conn: u64) -> (u64, u64) {
    notes.iter().fold((0, 0), |(t, f), n| match n {
        Note::Bytes {
            conn: c,
            to_pod,
            from_pod,
        } if *c == conn => (t + to_pod, f + from_pod),
        _ => (t, f),
    })
}

/// curl through kubectl: request, half-close, the whole answer back, then both ends close.
#[test]
fn a_half_closed_client_gets_the_whole_answer() {
    let mut rig = Rig::new(&[80, 7000], Capture::Metadata);
    let a = rig.kubectl.open(7000);
    rig.pump();
    let (_, kubelet, notes) = rig.take();
    assert_eq!(
        kubelet,
        [ServerEvent::Connect {
            request_id: "0".into(),
            port: 7000
        }]
    );
    assert_eq!(
        notes,
        [Note::Opened {
            conn: 1,
            port: 7000
        }]
    );
    rig.kubectl.send(&a, b"ping");
    rig.kubectl.send_fin(&a);
    rig.pump();
    let (_, kubelet, notes) = rig.take();
    assert_eq!(
        kubelet,
        [
            ServerEvent::Data {
                request_id: "0".into(),
                data: b"ping".to_vec()
            },
            ServerEvent::DataFin {
                request_id: "0".into()
            }
        ]
    );
    assert_eq!(
        notes,
        [Note::HalfClose {
            conn: 1,
            direction: Direction::ToPod
        }]
    );
    // The pod answers after the client's FIN, then closes as kubelet does.
    rig.kubelet.send("0", b"pong, and more");
    rig.kubelet.send_fin("0");
    rig.kubelet.close("0");
    rig.pump();
    let (kubectl, _, notes) = rig.take();
    assert_eq!(
        kubectl,
        [
            ClientEvent::Data {
                request_id: a.clone(),
                data: b"pong, and more".to_vec()
            },
            ClientEvent::Fin { request_id: a }
        ]
    );
    assert_eq!(ended(&notes), [(1, ForwardOutcome::Closed, String::new())]);
    assert_eq!(bytes_of(&notes, 1), (4, 14));
    assert_eq!(rig.switch.open_connections(), 0);
}

/// kubectl's own teardown when the pod's side ends first: it resets the data stream, and must
/// then see its error stream end (the switch closes it) to close the local connection.
#[test]
fn the_pods_end_then_kubectls_reset_is_a_clean_close() {
    let mut rig = Rig::new(&[80], Capture::Full);
    let a = rig.kubectl.open(80);
    rig.pump();
    rig.kubectl.send(&a, b"GET /");
    rig.pump();
    rig.kubelet.send("0", b"200 OK");
    rig.kubelet.send_fin("0");
    rig.pump();
    // kubectl: remote done → reset the data stream, read the error stream to its end.
    rig.kubectl.finish(&a);
    rig.pump();
    let (kubectl, kubelet, notes) = rig.take();
    assert!(kubectl.contains(&ClientEvent::Fin {
        request_id: a.clone()
    }));
    // The switch mirrors the reset toward the cluster.
    assert!(kubelet.contains(&ServerEvent::Reset {
        request_id: "0".into()
    }));
    assert_eq!(ended(&notes), [(1, ForwardOutcome::Closed, String::new())]);
    // Full capture: the payload both ways, in order.
    let data: Vec<(Direction, Vec<u8>)> = notes
        .iter()
        .filter_map(|n| match n {
            Note::Data {
                direction, bytes, ..
            } => Some((*direction, bytes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        data,
        [
            (Direction::ToPod, b"GET /".to_vec()),
            (Direction::FromPod, b"200 OK".to_vec())
        ]
    );
}

/// A port outside the role: its first stream is reset with REFUSED_STREAM, nothing reaches the
/// cluster, the refusal is noted once, and other connections keep working.
#[test]
fn a_port_outside_the_role_is_refused_alone() {
    let mut rig = Rig::new(&[80], Capture::Metadata);
    let denied = rig.kubectl.open(7000);
    let allowed = rig.kubectl.open(80);
    rig.pump();
    let (kubectl, kubelet, notes) = rig.take();
    assert_eq!(
        kubectl,
        [
            ClientEvent::Reset {
                request_id: denied.clone(),
                status: RST_REFUSED_STREAM
            },
            ClientEvent::Reset {
                request_id: denied,
                status: RST_REFUSED_STREAM
            },
            ClientEvent::Ready {
                request_id: allowed.clone()
            }
        ]
    );
    assert_eq!(
        kubelet,
        [ServerEvent::Connect {
            request_id: "0".into(),
            port: 80
        }],
        "only the allowed connection reached the cluster"
    );
    let refusals = ended(&notes);
    assert_eq!(refusals.len(), 1, "{notes:?}");
    assert_eq!((refusals[0].0, refusals[0].1), (1, ForwardOutcome::Refused));
    assert!(
        refusals[0]
            .2
            .contains("port 7000 is not allowed: the access policy (rule 1) lets this forward reach ports 80 only"),
        "{}",
        refusals[0].2
    );
    assert_eq!(
        notes[0],
        Note::Opened {
            conn: 1,
            port: 7000
        }
    );
    assert_eq!(notes[2], Note::Opened { conn: 2, port: 80 });
    rig.kubectl.send(&allowed, b"still works");
    rig.pump();
    let (_, kubelet, _) = rig.take();
    assert_eq!(
        kubelet,
        [ServerEvent::Data {
            request_id: "0".into(),
            data: b"still works".to_vec()
        }]
    );
}

/// What the cluster says on a connection's error stream reaches kubectl on its own, and is the
/// connection's recorded outcome.
#[test]
fn the_clusters_error_reaches_kubectl_and_the_recording() {
    let mut rig = Rig::new(&[7001], Capture::Metadata);
    let a = rig.kubectl.open(7001);
    rig.pump();
    rig.kubelet.fail(
        "0",
        "error forwarding port 7001 to pod x: connection refused",
    );
    rig.kubelet.close("0");
    rig.pump();
    rig.kubectl.finish(&a);
    rig.pump();
    let (kubectl, _, notes) = rig.take();
    assert!(kubectl.contains(&ClientEvent::Error {
        request_id: a,
        message: "error forwarding port 7001 to pod x: connection refused".into()
    }));
    assert_eq!(
        ended(&notes),
        [(
            1,
            ForwardOutcome::Error,
            "error forwarding port 7001 to pod x: connection refused".into()
        )]
    );
}

/// A reset from either side ends the connection, and says who reset it.
#[test]
fn resets_both_ways() {
    let mut rig = Rig::new(&[80], Capture::Metadata);
    let a = rig.kubectl.open(80);
    let b = rig.kubectl.open(80);
    rig.pump();
    rig.kubectl.send(&a, b"x");
    rig.pump();
    rig.kubectl.reset(&a);
    rig.kubelet.reset("1");
    rig.pump();
    let (kubectl, kubelet, notes) = rig.take();
    assert!(kubelet.contains(&ServerEvent::Reset {
        request_id: "0".into()
    }));
    assert!(kubectl.contains(&ClientEvent::Reset {
        request_id: b,
        status: RST_CANCEL
    }));
    let mut outcomes: Vec<(u64, ForwardOutcome)> =
        ended(&notes).into_iter().map(|(c, o, _)| (c, o)).collect();
    outcomes.sort_by_key(|(c, _)| *c);
    assert_eq!(
        outcomes,
        [
            (1, ForwardOutcome::ResetByClient),
            (2, ForwardOutcome::ResetByCluster)
        ]
    );
    assert_eq!(bytes_of(&notes, 1), (1, 0));
}

/// The session's end: every open connection hears why on its error stream and is closed;
/// GOAWAY goes to the cluster at once and to the client only when asked (after its grace to
/// close by itself); the notes say the connection ended with the session.
#[test]
fn ending_the_session_tells_every_open_connection() {
    let mut rig = Rig::new(&[80], Capture::Metadata);
    let a = rig.kubectl.open(80);
    rig.pump();
    rig.kubectl.send(&a, b"abc");
    rig.pump();
    rig.switch.tick();
    rig.switch.end_all("kubetape: access revoked");
    rig.pump();
    let (kubectl, kubelet, notes) = rig.take();
    assert!(kubectl.contains(&ClientEvent::Error {
        request_id: a,
        message: "kubetape: access revoked".into()
    }));
    assert!(!kubectl.contains(&ClientEvent::GoAway));
    rig.switch.goaway_client();
    rig.pump();
    let (kubectl, _, _) = rig.take();
    assert!(kubectl.contains(&ClientEvent::GoAway));
    assert!(kubelet.contains(&ServerEvent::GoAway));
    assert!(kubelet.contains(&ServerEvent::Reset {
        request_id: "0".into()
    }));
    assert_eq!(
        ended(&notes),
        [(1, ForwardOutcome::Ended, "kubetape: access revoked".into())]
    );
    // The tick reported the 3 bytes; the end has nothing left to add.
    assert_eq!(bytes_of(&notes, 1), (3, 0));
    assert_eq!(
        notes
            .iter()
            .filter(|n| matches!(n, Note::Bytes { .. }))
            .count(),
        1
    );
}

fn channel_frames(out: Vec<Vec<u8>>) -> Vec<(u8, Vec<u8>)> {
    out.into_iter().map(|m| (m[0], m[1..].to_vec())).collect()
}

/// kube-rs: the port prefixes first, a refused port's reason on its error channel, data mapped
/// between channels and connections, and the forward done when every port's connection ended.
#[test]
fn the_channel_protocol_maps_ports_to_connections() {
    let mut s = Switch::channels(
        Protocol::V4,
        vec![80, 5432],
        scope(&[80], Capture::Metadata),
        false,
        "rule 2".into(),
    );
    let out = channel_frames(s.take_client_output());
    assert_eq!(
        out[..4],
        [
            (0, vec![80, 0]),
            (1, vec![80, 0]),
            (2, vec![0x38, 0x15]),
            (3, vec![0x38, 0x15])
        ]
    );
    assert_eq!(out[4].0, 3);
    assert!(String::from_utf8_lossy(&out[4].1).contains("port 5432 is not allowed"));
    let notes = s.take_notes();
    assert_eq!(notes[0], Note::Opened { conn: 1, port: 80 });
    assert_eq!(ended(&notes)[0].1, ForwardOutcome::Refused);
    // The refused port's data goes nowhere; port 80's goes upstream.
    let mut kubelet = Server::new();
    let events = kubelet.receive(&s.take_upstream_output()).unwrap();
    assert_eq!(
        events,
        [ServerEvent::Connect {
            request_id: "0".into(),
            port: 80
        }]
    );
    s.on_client_frame(Frame::Data {
        channel: 2,
        payload: b"nowhere".to_vec(),
    });
    s.on_client_frame(Frame::Data {
        channel: 0,
        payload: b"GET /".to_vec(),
    });
    assert_eq!(
        kubelet.receive(&s.take_upstream_output()).unwrap(),
        [ServerEvent::Data {
            request_id: "0".into(),
            data: b"GET /".to_vec()
        }]
    );
    kubelet.send("0", b"hello");
    kubelet.send_fin("0");
    kubelet.close("0");
    s.on_upstream_bytes(&kubelet.take_output()).unwrap();
    assert_eq!(
        channel_frames(s.take_client_output()),
        [(0, b"hello".to_vec())]
    );
    assert_eq!(s.stop(), Some(&Stop::ClientDone));
    assert_eq!(
        ended(&s.take_notes()),
        [(1, ForwardOutcome::Closed, String::new())]
    );
}

/// Garbage from either side is an error the relay ends the session on, not a panic.
#[test]
fn garbage_is_an_error() {
    let mut s = Switch::spdy(scope(&[80], Capture::Metadata), false, "r".into());
    assert!(s.on_client_bytes(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]).is_err());
    let mut s = Switch::spdy(scope(&[80], Capture::Metadata), false, "r".into());
    assert!(
        s.on_upstream_bytes(&[0x80, 0x02, 0, 1, 0, 0, 0, 0])
            .is_err()
    );
}
