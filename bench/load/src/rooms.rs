//! Setting up rooms: an MLS member per participant, and [`add_room`],
//! which connects a room's committer through a real [`Client`] (it creates
//! the group), then its raw TCP participants with their `Join`s, and spawns
//! every participant's sender and receiver tasks, held back until the
//! room's `go` switch says when media starts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use satsuma_client::{Client, Endpoint};
use satsuma_core::committer::{Member, MemberConfig};
use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};
use satsuma_core::wire::{self, Capabilities, RoomName, Transport};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

use crate::mesh::Mesh;
use crate::traffic::{
    Kid, Participant, Plan, Received, Shared, client_events, client_sender, raw_receiver,
    raw_sender,
};
use crate::{Failure, Result, fail};

// ---------------------------------------------------------------- rooms --

pub(crate) fn member(
    name: &str,
    room: &RoomName,
    can_commit: bool,
    transport: Transport,
) -> Result<Member<Session>> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).map_err(|e| Failure(format!("no OS randomness: {e}")))?;
    let mut session = Session::create(
        SatsumaCrypto::from_seed(seed),
        MemberInfo::new(name, "load").map_err(|e| Failure(format!("member info: {e}")))?,
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .map_err(|e| Failure(format!("MLS session: {e}")))?;
    // Dated key packages: the committer (a client, with the time) refuses
    // those of 1970.
    session.set_time(satsuma_core::UnixTime::now());
    Ok(Member::new(
        session,
        MemberConfig {
            room: room.clone(),
            capabilities: Capabilities {
                can_commit,
                transport,
            },
        },
    ))
}

/// One room's participants and the switch that starts their media.
#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) participants: Vec<Participant>,
    pub(crate) go: watch::Sender<Option<u64>>,
    /// Who hears whom (WebRTC rooms only).
    pub(crate) mesh: Option<Arc<Mesh>>,
}

/// Joins room `index`: the committer first (it creates the group), then
/// the raw participants, whose `Join`s it answers with commits.
pub(crate) async fn add_room(
    index: usize,
    intercom: SocketAddr,
    members: usize,
    video: usize,
    shared: Arc<Shared>,
) -> Result<Room> {
    const STEP: Duration = Duration::from_secs(20);
    let name =
        RoomName::new(&format!("load-{index}")).map_err(|e| Failure(format!("room name: {e}")))?;
    let (go, go_rx) = watch::channel(None);
    let mut participants = Vec::with_capacity(members);
    let first_id =
        u32::try_from(index * members).map_err(|_| Failure("too many participants".into()))?;

    let committer = member(&format!("committer-{index}"), &name, true, Transport::Wire)?;
    let (client, events) = tokio::time::timeout(
        STEP,
        Client::start(Endpoint::Intercom(intercom), name.clone(), committer),
    )
    .await
    .map_err(|_| {
        Failure(format!(
            "room {index}: the committer could not connect within {STEP:?}"
        ))
    })?
    .map_err(|e| Failure(format!("room {index}: committer: {e}")))?;
    let (joined_tx, joined_rx) = oneshot::channel();
    let p = Participant {
        sent: Arc::default(),
        received: Arc::new(Mutex::new(Received::new())),
    };
    tokio::spawn(client_events(
        events,
        first_id,
        Arc::clone(&shared),
        Arc::clone(&p.received),
        joined_tx,
    ));
    match tokio::time::timeout(STEP, joined_rx).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            return fail(format!(
                "room {index}: the committer stopped before creating the group"
            ));
        }
        Err(_) => {
            return fail(format!(
                "room {index}: the committer did not create the group within {STEP:?}"
            ));
        }
    }
    let plan = Plan {
        id: first_id,
        video: video > 0,
    };
    tokio::spawn(client_sender(
        client,
        plan,
        Arc::clone(&shared),
        Arc::clone(&p.sent),
        go_rx.clone(),
    ));
    participants.push(p);

    for k in 1..members {
        let id = first_id + u32::try_from(k).unwrap_or(0);
        let mut joiner = member(&format!("raw-{id}"), &name, false, Transport::Wire)?;
        joiner
            .join(satsuma_core::Instant::ZERO)
            .map_err(|e| Failure(format!("participant {id}: join: {e}")))?;
        let mut hello = Vec::new();
        while let Some(message) = joiner.poll_transmit() {
            hello.extend(
                wire::encode_framed(&wire::ToServer::from(message))
                    .map_err(|e| Failure(format!("encode Join: {e}")))?,
            );
        }
        let tcp = tokio::time::timeout(STEP, TcpStream::connect(intercom))
            .await
            .map_err(|_| {
                Failure(format!(
                    "participant {id}: no connection to {intercom} within {STEP:?}"
                ))
            })?
            .map_err(|e| Failure(format!("participant {id}: connect to {intercom}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (read, mut write) = tcp.into_split();
        write
            .write_all(&hello)
            .await
            .map_err(|e| Failure(format!("participant {id}: send Join: {e}")))?;
        let p = Participant {
            sent: Arc::default(),
            received: Arc::new(Mutex::new(Received::new())),
        };
        let kid = Arc::new(Kid::new());
        tokio::spawn(raw_receiver(
            read,
            id,
            Arc::clone(&kid),
            Arc::clone(&shared),
            Arc::clone(&p.received),
        ));
        let plan = Plan {
            id,
            video: k < video,
        };
        tokio::spawn(raw_sender(
            write,
            plan,
            kid,
            Arc::clone(&shared),
            Arc::clone(&p.sent),
            go_rx.clone(),
        ));
        participants.push(p);
    }
    Ok(Room {
        participants,
        go,
        mesh: None,
    })
}
