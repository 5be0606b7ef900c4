//! Rooms on the bare relay (`relay.rs`): each participant is one UDP
//! socket that says hello until its room's media starts, then sends the
//! webrtc mode's traffic (the same payloads, stamped the same way, padded
//! to the same size on the wire) and times what it receives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::relay::{HEADER, HELLO, MEDIA, RTP_OVERHEAD, header};
use crate::rooms::Room;
use crate::traffic::{
    Participant, Plan, Received, Schedule, Sent, Shared, Template, at_ns, mark, now_ns, phase,
    stamp_time,
};
use crate::{Failure, Result};

/// How often a participant says hello before the media starts.
const HELLO_EVERY: Duration = Duration::from_millis(100);

/// Joins room `index` of the relay at `relay`; its participants stop
/// quietly once `stop` is set.
pub(crate) async fn add_room(
    index: usize,
    relay: SocketAddr,
    members: usize,
    video: usize,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> Result<Room> {
    let room = u32::try_from(index).map_err(|_| Failure("too many rooms".into()))?;
    let first_id =
        u32::try_from(index * members).map_err(|_| Failure("too many participants".into()))?;
    let (go, go_rx) = watch::channel(None);
    let mut participants = Vec::with_capacity(members);
    for k in 0..members {
        let member = u16::try_from(k).map_err(|_| Failure("too many members".into()))?;
        let socket = async {
            let s = UdpSocket::bind("127.0.0.1:0").await?;
            s.connect(relay).await?;
            Ok::<_, std::io::Error>(s)
        };
        let socket = Arc::new(
            socket
                .await
                .map_err(|e| Failure(format!("room {index}: a socket to the relay: {e}")))?,
        );
        let p = Participant {
            sent: Arc::default(),
            received: Arc::new(Mutex::new(Received::new())),
        };
        let plan = Plan {
            id: first_id + u32::from(member),
            video: k < video,
        };
        tokio::spawn(receive(
            Arc::clone(&socket),
            Arc::clone(&shared),
            Arc::clone(&p.received),
            Arc::clone(&stop),
        ));
        tokio::spawn(send(
            socket,
            (room, member),
            plan,
            Arc::clone(&shared),
            Arc::clone(&p.sent),
            go_rx.clone(),
            Arc::clone(&stop),
        ));
        participants.push(p);
    }
    Ok(Room {
        participants,
        go,
        mesh: None,
    })
}

/// A datagram carrying `t`'s payload, padded to the size the desktop
/// plane's packet of that payload has on the wire.
fn datagram(room: u32, member: u16, t: &Template) -> Vec<u8> {
    let mut d = header(room, member, MEDIA).to_vec();
    d.extend_from_slice(&t.payload);
    d.resize(t.payload.len() + RTP_OVERHEAD.max(HEADER), 0);
    d
}

async fn send(
    socket: Arc<UdpSocket>,
    (room, member): (u32, u16),
    plan: Plan,
    shared: Arc<Shared>,
    sent: Arc<Sent>,
    mut go: watch::Receiver<Option<u64>>,
    stop: Arc<AtomicBool>,
) {
    let hello = header(room, member, HELLO);
    let base = loop {
        if stop.load(Relaxed) {
            return;
        }
        if let Some(base) = *go.borrow_and_update() {
            break base;
        }
        if let Err(e) = socket.send(&hello).await {
            return shared
                .trouble
                .note(format!("participant {}: hello: {e}", plan.id));
        }
        tokio::select! {
            changed = go.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(HELLO_EVERY) => {}
        }
    };
    let mut audio = datagram(room, member, &shared.audio);
    let mut video = datagram(room, member, &shared.video);
    let mut schedule = Schedule::new(base + phase(plan.id), plan.video);
    let mut tick = tokio::time::interval_at(at_ns(schedule.base), Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq: u32 = 0;
    loop {
        tick.tick().await;
        if stop.load(Relaxed) {
            return;
        }
        let now = now_ns();
        let (audio_due, frames, skipped) = schedule.due(now);
        if skipped > 0 {
            sent.skipped.fetch_add(skipped, Relaxed);
        }
        let packets = std::iter::repeat_n(false, usize::try_from(audio_due).unwrap_or(0)).chain(
            std::iter::repeat_n(
                true,
                usize::try_from(frames * shared.video_packets).unwrap_or(0),
            ),
        );
        let mut n = 0;
        for is_video in packets {
            let (d, t) = if is_video {
                (&mut video, &shared.video)
            } else {
                (&mut audio, &shared.audio)
            };
            if let Some(payload) = d.get_mut(HEADER..HEADER + t.payload.len()) {
                mark(payload, t.codec, 0, plan.id, seq, now);
            }
            seq = seq.wrapping_add(1);
            if let Err(e) = socket.send(d).await {
                if !stop.load(Relaxed) {
                    shared
                        .trouble
                        .note(format!("participant {}: send: {e}", plan.id));
                }
                return;
            }
            n += 1;
        }
        sent.total.fetch_add(n, Relaxed);
        if shared.window.contains(now) {
            sent.in_window.fetch_add(n, Relaxed);
        }
    }
}

async fn receive(
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                if !stop.load(Relaxed) {
                    shared.trouble.note(format!("relay receive: {e}"));
                }
                return;
            }
        };
        if stop.load(Relaxed) {
            return;
        }
        let now = now_ns();
        if let Some(sent_at) = buf
            .get(HEADER..n)
            .and_then(stamp_time)
            .filter(|&t| shared.window.contains(t))
        {
            let mut stats = received.lock().unwrap_or_else(PoisonError::into_inner);
            stats.packets += 1;
            stats.latency.record(now.saturating_sub(sent_at));
        }
    }
}
