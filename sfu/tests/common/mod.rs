//! The real `satsuma-sfu` binary on loopback, and clients with real MLS
//! members.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use satsuma_client::{Client, ClientEvent, Endpoint};
use satsuma_core::committer::{Event, Member, MemberConfig};
use satsuma_core::media::Codec;
use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};
use satsuma_core::wire::{Capabilities, RoomName, Transport};
use tokio::sync::mpsc;

/// The SFU as a child process; killed when dropped.
pub struct Sfu {
    child: Child,
    pub http: SocketAddr,
    pub intercom: SocketAddr,
    pub capture: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sfu {
    /// Starts the binary on ephemeral loopback ports with `env` overrides,
    /// recording every payload it handles.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let capture = dir.path().join("capture.bin");
        let mut command = Command::new(env!("CARGO_BIN_EXE_satsuma-sfu"));
        command
            .args([
                "--http",
                "127.0.0.1:0",
                "--intercom",
                "127.0.0.1:0",
                "--capture",
            ])
            .arg(&capture)
            .env("RUST_LOG", "satsuma_sfu=debug,warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the satsuma-sfu binary");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .parse()
                .unwrap()
        };
        let (http, intercom) = (addr("http="), addr("intercom="));
        Self {
            child,
            http,
            intercom,
            capture,
            _dir: dir,
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `GET path` over plain HTTP/1.1.
    pub async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(self.http).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: sfu\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// One metric's value from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// Every record in the capture file (the process flushes it on exit).
    pub fn records(path: &Path) -> Vec<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while rest.len() >= 4 {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            if rest.len() < 4 + len {
                break;
            }
            out.push(rest[4..4 + len].to_vec());
            rest = &rest[4 + len..];
        }
        out
    }

    /// Stops the process with SIGTERM (graceful shutdown) and waits up to
    /// five seconds; its exit status, or `None` if it had to be killed.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member with its own identity from the OS's entropy, and the
/// wall-clock time: committers refuse key packages dated 1970.
pub fn member(name: &str, room: &str, transport: Transport) -> Member<Session> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).unwrap();
    let mut session = Session::create(
        SatsumaCrypto::from_seed(seed),
        MemberInfo::new(name, "test").unwrap(),
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .unwrap();
    session.set_time(satsuma_core::UnixTime::now());
    Member::new(
        session,
        MemberConfig {
            room: RoomName::new(room).unwrap(),
            capabilities: Capabilities {
                can_commit: transport == Transport::WebRtc,
                transport,
            },
        },
    )
}

/// A client and what it has seen.
pub struct Peer {
    pub name: String,
    pub client: Client<Session>,
    pub events: mpsc::Receiver<ClientEvent>,
    pub log: Vec<(u64, satsuma_core::wire::Entry)>,
    pub media: Vec<satsuma_core::wire::Media>,
    pub epoch: Option<u64>,
    pub errors: Vec<satsuma_core::wire::ErrorCode>,
    pub reconnects: Vec<bool>,
    pub closed: bool,
    /// Offers from the SFU not answered yet.
    pub offers: Vec<String>,
    /// Every offer from the SFU, answered or not.
    pub offered: Vec<String>,
    /// The WebRTC side of a desktop peer, once it has one.
    pub rtc: Option<(
        std::sync::Arc<satsuma_client::rtc::RtcClient>,
        satsuma_client::rtc::ClientStreams,
    )>,
}

impl Peer {
    pub async fn connect(sfu: &Sfu, name: &str, room: &str, transport: Transport) -> Self {
        let endpoint = match transport {
            Transport::WebRtc => Endpoint::WebSocket(sfu.http),
            Transport::Wire => Endpoint::Intercom(sfu.intercom),
        };
        let (client, events) = Client::start(
            endpoint,
            RoomName::new(room).unwrap(),
            member(name, room, transport),
        )
        .await
        .unwrap();
        Self {
            name: name.into(),
            client,
            events,
            log: Vec::new(),
            media: Vec::new(),
            epoch: None,
            errors: Vec::new(),
            reconnects: Vec::new(),
            closed: false,
            offers: Vec::new(),
            offered: Vec::new(),
            rtc: None,
        }
    }

    /// A desktop peer with a WebRTC peer connection that publishes audio in
    /// `audio_codec`.
    pub async fn desktop(sfu: &Sfu, name: &str, room: &str, audio_codec: Codec) -> Self {
        let mut peer = Self::connect(sfu, name, room, Transport::WebRtc).await;
        let settings = satsuma_client::rtc::ClientSettings {
            audio_codec,
            ..Default::default()
        };
        peer.rtc = Some(
            satsuma_client::rtc::RtcClient::new(&settings)
                .await
                .unwrap(),
        );
        peer
    }

    /// Absorbs events and answers the SFU's offers.
    pub async fn pump(&mut self) {
        self.absorb();
        let offers = std::mem::take(&mut self.offers);
        for offer in offers {
            let Some((rtc, _)) = &self.rtc else { continue };
            self.client
                .answer_offer(rtc, offer.as_bytes())
                .await
                .unwrap();
        }
    }

    /// Takes in every event that has arrived.
    pub fn absorb(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.note(event);
        }
    }

    fn note(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Log { seq, entry } => self.log.push((seq, entry)),
            ClientEvent::Media(m) => self.media.push(m),
            ClientEvent::Member(Event::Joined { epoch } | Event::NewEpoch { epoch, .. }) => {
                self.epoch = Some(epoch);
            }
            ClientEvent::Rtc(satsuma_core::wire::Signal::Offer(sdp)) => {
                let sdp = String::from_utf8_lossy(&sdp).into_owned();
                self.offered.push(sdp.clone());
                self.offers.push(sdp);
            }
            ClientEvent::Member(_) | ClientEvent::Rtc(_) => {}
            ClientEvent::Error(code, _) => self.errors.push(code),
            ClientEvent::Reconnected { resumed } => self.reconnects.push(resumed),
            ClientEvent::Closed => self.closed = true,
        }
    }

    /// The member's safety number and epoch, if in a group.
    pub async fn safety(&self) -> Option<(u64, String)> {
        self.client
            .with_member(|m| {
                let g = m.group();
                Some((g.epoch()?, g.safety_number().ok()?.to_string()))
            })
            .await
            .ok()
            .flatten()
    }
}

/// Waits (up to `secs`) until `done` holds for every peer, absorbing events.
pub async fn wait_for(
    peers: &mut [&mut Peer],
    secs: u64,
    what: &str,
    done: impl Fn(&Peer) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        for p in peers.iter_mut() {
            p.pump().await;
        }
        if peers.iter().all(|p| done(p)) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let state: Vec<_> = peers
                .iter()
                .map(|p| (p.name.clone(), p.epoch, p.log.len(), p.errors.clone()))
                .collect();
            panic!("timed out waiting for {what}: {state:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every peer's member shows the same epoch and safety number,
/// with `n` members in the group; returns the epoch.
pub async fn settled(peers: &mut [&mut Peer], n: usize, secs: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let mut views = Vec::new();
        for p in peers.iter_mut() {
            p.pump().await;
            let size = p
                .client
                .with_member(|m| m.group().roster().len())
                .await
                .unwrap_or(0);
            views.push((p.safety().await, size));
        }
        if views.iter().all(|v| v.0.is_some() && v.1 == n)
            && views.windows(2).all(|w| w[0].0 == w[1].0)
        {
            return views[0].0.as_ref().map(|v| v.0).unwrap_or_default();
        }
        if tokio::time::Instant::now() > deadline {
            panic!("not settled at {n} members: {views:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An intercom link spoken by hand, frame by frame.
pub struct RawIntercom {
    pub tcp: tokio::net::TcpStream,
    pub member: Member<Session>,
}

impl RawIntercom {
    pub async fn connect(sfu: &Sfu, room: &str) -> Self {
        let tcp = tokio::net::TcpStream::connect(sfu.intercom).await.unwrap();
        Self {
            tcp,
            member: member("raw", room, Transport::Wire),
        }
    }

    /// Sends raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        self.tcp.write_all(bytes).await
    }

    /// Sends a message with its length prefix.
    pub async fn send(&mut self, message: &satsuma_core::wire::ToServer) {
        self.write(&satsuma_core::wire::encode_framed(message).unwrap())
            .await
            .unwrap();
    }

    /// The member's `Join`.
    pub async fn join(&mut self) {
        self.member.join(satsuma_core::Instant::ZERO).unwrap();
        while let Some(m) = self.member.poll_transmit() {
            self.send(&m.into()).await;
        }
    }

    /// The next message, or `None` when the link closed (or nothing came in
    /// 10 s).
    pub async fn recv(&mut self) -> Option<satsuma_core::wire::ToClient> {
        use satsuma_core::wire::Message as _;
        use tokio::io::AsyncReadExt as _;
        let read = async {
            let mut header = [0; 4];
            self.tcp.read_exact(&mut header).await.ok()?;
            let mut body = vec![0; satsuma_core::wire::frame_len(header).ok()?];
            self.tcp.read_exact(&mut body).await.ok()?;
            satsuma_core::wire::ToClient::decode(&body).ok()
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .ok()
            .flatten()
    }

    /// Reads until an `Error`; its code, or `None` if the link closed first.
    pub async fn error(&mut self) -> Option<satsuma_core::wire::ErrorCode> {
        loop {
            match self.recv().await? {
                satsuma_core::wire::ToClient::Link(satsuma_core::wire::LinkMsg::Error {
                    code,
                    ..
                }) => return Some(code),
                _ => continue,
            }
        }
    }

    /// Whether the SFU closed the link (EOF within 10 s).
    pub async fn closed(&mut self) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut sink = [0; 4096];
        let wait = async {
            loop {
                match self.tcp.read(&mut sink).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or(false)
    }

    /// Reads until the `Hello` that seats this connection.
    pub async fn wait_for_hello(&mut self) {
        loop {
            match self.recv().await {
                Some(satsuma_core::wire::ToClient::Control(satsuma_core::wire::Down::Hello {
                    ..
                })) => return,
                Some(_) => {}
                None => panic!("no Hello"),
            }
        }
    }

    pub async fn wait_for_welcome(&mut self) {
        loop {
            match self.recv().await {
                Some(satsuma_core::wire::ToClient::Control(
                    satsuma_core::wire::Down::Welcome { .. },
                )) => return,
                Some(_) => {}
                None => panic!("no Welcome"),
            }
        }
    }
}

/// A member that speaks the link by hand, over WebSocket (a desktop) or
/// the intercom's TCP link, and keeps its resume state with
/// `core::resume::Cursor`, so a test decides exactly what is lost when.
pub struct RawPeer {
    pub member: Member<Session>,
    pub cursor: satsuma_core::resume::Cursor<Vec<u8>>,
    link: Option<RawLink>,
    room: RoomName,
    transport: Transport,
    /// Every `Entry` received, by sequence number, in arrival order.
    pub seqs: Vec<u64>,
    /// Every direct (link) error received.
    pub errors: Vec<satsuma_core::wire::ErrorCode>,
    /// Control messages the member handed over, sent or lost.
    pub controls: u64,
    /// How many of the next control messages to lose: kept for a resume
    /// but never sent, as if the link had broken under them.
    pub lose: usize,
    /// Control messages are counted but no longer handed to the member
    /// (which could not follow a log the test forges).
    pub deaf: bool,
}

enum RawLink {
    Ws(
        Box<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
        >,
    ),
    Tcp(tokio::net::TcpStream),
}

impl RawLink {
    async fn open(sfu: &Sfu, room: &str, transport: Transport) -> Self {
        match transport {
            Transport::WebRtc => {
                let url = format!("ws://{}/v1/rooms/{room}/ws", sfu.http);
                let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                Self::Ws(Box::new(ws))
            }
            Transport::Wire => {
                Self::Tcp(tokio::net::TcpStream::connect(sfu.intercom).await.unwrap())
            }
        }
    }

    async fn send(&mut self, body: &[u8]) {
        self.try_send(body).await.unwrap();
    }

    async fn try_send(&mut self, body: &[u8]) -> Result<(), String> {
        use futures_util::SinkExt as _;
        use tokio::io::AsyncWriteExt as _;
        match self {
            Self::Ws(ws) => ws
                .send(tokio_tungstenite::tungstenite::Message::Binary(
                    body.to_vec().into(),
                ))
                .await
                .map_err(|e| e.to_string()),
            Self::Tcp(tcp) => {
                let len = u32::try_from(body.len()).unwrap().to_be_bytes();
                tcp.write_all(&[&len[..], body].concat())
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn recv(&mut self) -> Option<Vec<u8>> {
        use futures_util::StreamExt as _;
        use tokio::io::AsyncReadExt as _;
        match self {
            Self::Ws(ws) => loop {
                match ws.next().await? {
                    Ok(tokio_tungstenite::tungstenite::Message::Binary(b)) => {
                        return Some(b.to_vec());
                    }
                    Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                }
            },
            Self::Tcp(tcp) => {
                let mut header = [0; 4];
                tcp.read_exact(&mut header).await.ok()?;
                let mut body = vec![0; satsuma_core::wire::frame_len(header).ok()?];
                tcp.read_exact(&mut body).await.ok()?;
                Some(body)
            }
        }
    }
}

impl RawPeer {
    /// A new member on a new link; it has sent nothing yet.
    pub async fn connect(sfu: &Sfu, name: &str, room: &str, transport: Transport) -> Self {
        Self {
            member: member(name, room, transport),
            cursor: satsuma_core::resume::Cursor::new(Default::default()),
            link: Some(RawLink::open(sfu, room, transport).await),
            room: RoomName::new(room).unwrap(),
            transport,
            seqs: Vec::new(),
            errors: Vec::new(),
            controls: 0,
            lose: 0,
            deaf: false,
        }
    }

    fn now() -> satsuma_core::Instant {
        satsuma_client::clock().now()
    }

    fn link(&mut self) -> &mut RawLink {
        self.link.as_mut().expect("a link")
    }

    /// Sends a message as it is.
    pub async fn send(&mut self, message: &satsuma_core::wire::ToServer) {
        use satsuma_core::wire::Message as _;
        let body = message.encode().unwrap();
        self.link().send(&body).await;
    }

    /// Sends what the member wants sent; control messages go through the
    /// cursor (and may be lost, see `lose`, or with a broken link).
    pub async fn flush(&mut self) {
        use satsuma_core::wire::{Message as _, ToServer};
        while let Some(request) = self.member.poll_transmit() {
            let message = ToServer::from(request);
            let body = message.encode().unwrap();
            if matches!(message, ToServer::Control(_)) {
                self.cursor.sent(body.clone());
                self.controls += 1;
                if self.lose > 0 {
                    self.lose -= 1;
                    continue;
                }
            }
            // A broken link loses it, as it would a client's; a control
            // message is kept for the resume.
            let _ = self.link().try_send(&body).await;
        }
    }

    /// Sends a control message the member did not make (the SFU cannot
    /// tell), through the cursor like the member's own. If the link has
    /// broken it is lost with it, and kept for the resume.
    pub async fn send_control(&mut self, message: satsuma_core::wire::Up) {
        use satsuma_core::wire::{Message as _, ToServer};
        let body = ToServer::Control(message).encode().unwrap();
        self.cursor.sent(body.clone());
        self.controls += 1;
        let _ = self.link().try_send(&body).await;
    }

    /// Joins: the member's `Join`.
    pub async fn join(&mut self) {
        self.member.join(Self::now()).unwrap();
        self.flush().await;
    }

    /// Reads one message and hands it on as a client would (the member,
    /// the cursor); `None` if the link closed or nothing came in 10 s.
    pub async fn step(&mut self) -> Option<satsuma_core::wire::ToClient> {
        use satsuma_core::wire::{Down, LinkMsg, Message as _, ToClient};
        let body = tokio::time::timeout(Duration::from_secs(10), self.link().recv())
            .await
            .ok()??;
        let message = ToClient::decode(&body).unwrap();
        match &message {
            ToClient::Control(down) => {
                self.cursor.received();
                if let Down::Entry { seq, .. } = down {
                    self.seqs.push(*seq);
                }
                if !self.deaf {
                    let _ = self.member.handle_message(Self::now(), down.clone());
                    self.flush().await;
                }
            }
            ToClient::Link(LinkMsg::Resumable { token, .. }) => {
                self.cursor.resumable(self.member.conn().unwrap(), *token);
            }
            ToClient::Link(LinkMsg::Error { code, .. }) => self.errors.push(*code),
            _ => {}
        }
        Some(message)
    }

    /// Reads until `done` holds.
    pub async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        while !done(self) {
            assert!(self.step().await.is_some(), "the link closed before {what}");
        }
    }

    /// The link breaks: the SFU reads EOF, and the seat waits.
    pub fn disconnect(&mut self) {
        self.link = None;
    }

    /// A new link takes the seat over; returns the SFU's count of our
    /// control messages. The ones it missed are sent again.
    pub async fn resume(&mut self, sfu: &Sfu) -> u64 {
        match self.try_resume(sfu).await {
            Ok(received) => received,
            Err(answer) => panic!("not resumed: {answer:?}"),
        }
    }

    /// Like `resume`, but the SFU's answer when it is not `Resumed`.
    pub async fn try_resume(&mut self, sfu: &Sfu) -> Result<u64, satsuma_core::wire::ToClient> {
        use satsuma_core::wire::{LinkMsg, Message as _, ToClient, ToServer};
        self.link = Some(RawLink::open(sfu, self.room.as_str(), self.transport).await);
        let open = self
            .cursor
            .resume(self.room.clone())
            .expect("a resumable seat");
        self.send(&ToServer::Open(open)).await;
        let body = self.link().recv().await.expect("an answer");
        let answer = ToClient::decode(&body).unwrap();
        let ToClient::Link(LinkMsg::Resumed { received }) = answer else {
            return Err(answer);
        };
        let again: Vec<Vec<u8>> = self.cursor.resumed(received).unwrap().cloned().collect();
        for body in again {
            self.link().send(&body).await;
        }
        Ok(received)
    }

    /// Whether the SFU closes the link (EOF or a transport error), reading
    /// and keeping whatever comes first, within 10 s.
    pub async fn closed(&mut self) -> bool {
        let wait = async {
            while let Some(body) = self.link().recv().await {
                use satsuma_core::wire::{LinkMsg, Message as _, ToClient};
                if let Ok(ToClient::Link(LinkMsg::Error { code, .. })) = ToClient::decode(&body) {
                    self.errors.push(code);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .is_ok()
    }
}
