//! A WebRTC peer of the SFU, as the desktop engine, the integration tests
//! and the load tool use it: it answers the SFU's offers (re-offers included),
//! publishes one audio and one video track of opaque payloads (video frames
//! split over packets by [`frames`]), and hands
//! every received packet over on a channel.
//!
//! It does not encode, encrypt or decode: payloads are whatever the caller
//! passes (SFrame ciphertext in the app). It never offers.
//!
//! ```no_run
//! # async fn run(offer: &str) -> Result<(), satsuma_client::rtc::RtcError> {
//! use satsuma_client::rtc::{ClientSettings, RtcClient};
//! let (client, mut streams) = RtcClient::new(&ClientSettings::default()).await?;
//! let answer = client.handle_offer(offer).await?; // send it to the SFU
//! client.send_audio(b"ciphertext", 960).await?;
//! if let Some(packet) = streams.media.recv().await {
//!     println!("{} bytes from stream {}", packet.payload.len(), packet.stream_id);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use satsuma_core::media::Codec;
use tokio::sync::mpsc;
use webrtc::api::API;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::reception_report::ReceptionReport;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter as _};
use webrtc::track::track_remote::TrackRemote;

use crate::cancel::Cancel;

mod api;
pub mod frames;

/// Why a WebRTC operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RtcError {
    /// The codec asked for the audio track carries video.
    #[error("{0:?} is not an audio codec")]
    NotAudio(Codec),
    /// ICE candidate gathering did not finish in time.
    #[error("ICE gathering took longer than {0:?}")]
    GatheringTimeout(Duration),
    /// The peer connection has no local description after answering.
    #[error("no local description after the answer")]
    NoLocalDescription,
    /// The answer is longer than a signalling message may be.
    #[error("the answer ({0} bytes) is too long to send")]
    AnswerTooLong(usize),
    /// webrtc-rs made no sender for the audio track.
    #[error("the audio track has no sender")]
    NoAudioSender,
    /// The WebRTC stack refused or failed.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::Error),
}

/// How long ICE gathering may take before an answer is given up.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// How a client is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The codec of the published audio track: Opus (default) or an
    /// intercom codec (PCMU, PCMA, G.722).
    pub audio_codec: Codec,
    /// Local addresses for host candidates; empty means every non-loopback
    /// interface. Default `["127.0.0.1"]`.
    pub ips: Vec<IpAddr>,
    /// Received packets buffered for the caller; more are dropped (and
    /// counted in [`RtcClient::dropped`]). Default 8192.
    pub media_queue: usize,
    /// Feedback events buffered for the caller. Default 256.
    pub feedback_queue: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            audio_codec: Codec::Opus,
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            media_queue: 8192,
            feedback_queue: 256,
        }
    }
}

/// One received RTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The track id: `<publisher conn id>-audio` or `-video`.
    pub track_id: String,
    /// The stream id: the publisher's connection id, in decimal.
    pub stream_id: String,
    /// The SSRC the SFU sends the track with.
    pub ssrc: u32,
    /// Whether the track is video.
    pub video: bool,
    /// The negotiated codec, if Satsuma knows it.
    pub codec: Option<Codec>,
    /// The RTP payload, as it arrived.
    pub payload: Bytes,
    /// RTP timestamp.
    pub timestamp: u32,
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP marker bit.
    pub marker: bool,
    /// RTP payload type.
    pub payload_type: u8,
}

/// RTCP about the client's own published tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// A PLI or FIR: someone wants a key frame of this track.
    KeyFrame {
        /// Whether it is about the video track.
        video: bool,
    },
    /// A NACK for these sequence numbers.
    Nack {
        /// Whether it is about the video track.
        video: bool,
        /// The missing packets.
        sequences: Vec<u16>,
    },
}

/// What the client received on one track so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackStats {
    /// The track id.
    pub track_id: String,
    /// The stream id.
    pub stream_id: String,
    /// The SSRC.
    pub ssrc: u32,
    /// Whether the track is video.
    pub video: bool,
    /// Packets received.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
}

/// The receiving ends of a client's channels.
#[derive(Debug)]
pub struct ClientStreams {
    /// Every received packet, in arrival order per track.
    pub media: mpsc::Receiver<Received>,
    /// Key-frame requests and NACKs for the client's own tracks.
    pub feedback: mpsc::Receiver<Feedback>,
}

/// A WebRTC client peer.
pub struct RtcClient {
    _api: API,
    pc: Arc<RTCPeerConnection>,
    /// The audio track now published, replaced when the codec changes
    /// ([`RtcClient::set_audio_codec`]).
    audio: Mutex<(Codec, Arc<TrackLocalStaticRTP>)>,
    audio_sender: Arc<RTCRtpSender>,
    video: Arc<TrackLocalStaticRTP>,
    audio_seq: AtomicU16,
    video_seq: AtomicU16,
    remote: Arc<Mutex<HashMap<u32, TrackStats>>>,
    dropped: Arc<AtomicU64>,
    /// Offers applied: a track's reader looks at its ids again after one.
    offers: Arc<AtomicU64>,
    cancel: Arc<Cancel>,
}

impl std::fmt::Debug for RtcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcClient").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    u16::from_be_bytes(b)
}

impl RtcClient {
    /// A client with its audio and video tracks ready to publish once the
    /// SFU's first offer is answered.
    ///
    /// # Errors
    /// When the codec is not an audio codec or webrtc-rs fails.
    pub async fn new(settings: &ClientSettings) -> Result<(Arc<Self>, ClientStreams), RtcError> {
        if !settings.audio_codec.is_audio() {
            return Err(RtcError::NotAudio(settings.audio_codec));
        }
        let audio_capability = api::capability(settings.audio_codec);
        let video_capability = api::capability(Codec::Vp8);
        let api = api::api(&settings.ips)?;
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        let audio = Arc::new(TrackLocalStaticRTP::new(
            audio_capability,
            "audio".to_owned(),
            "self".to_owned(),
        ));
        let video = Arc::new(TrackLocalStaticRTP::new(
            video_capability,
            "video".to_owned(),
            "self".to_owned(),
        ));
        let (media_tx, media) = mpsc::channel(settings.media_queue.max(1));
        let (feedback_tx, feedback) = mpsc::channel(settings.feedback_queue.max(1));
        let cancel = Arc::new(Cancel::new());
        let mut audio_sender = None;
        for (track, video) in [
            (
                Arc::clone(&audio) as Arc<dyn TrackLocal + Send + Sync>,
                false,
            ),
            (
                Arc::clone(&video) as Arc<dyn TrackLocal + Send + Sync>,
                true,
            ),
        ] {
            let transceiver = pc
                .add_transceiver_from_track(
                    track,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: Vec::new(),
                    }),
                )
                .await?;
            let sender = transceiver.sender().await;
            if !video {
                audio_sender = Some(Arc::clone(&sender));
            }
            tokio::spawn(read_feedback(
                sender,
                video,
                feedback_tx.clone(),
                cancel.cancelled(),
            ));
        }

        let remote = Arc::new(Mutex::new(HashMap::new()));
        let dropped = Arc::new(AtomicU64::new(0));
        let on_track_remote = Arc::clone(&remote);
        let on_track_dropped = Arc::clone(&dropped);
        let on_track_cancel = Arc::clone(&cancel);
        let offers = Arc::new(AtomicU64::new(0));
        let on_track_offers = Arc::clone(&offers);
        pc.on_track(Box::new(move |track, _receiver, _transceiver| {
            tokio::spawn(read_track(
                track,
                Arc::clone(&on_track_remote),
                media_tx.clone(),
                Arc::clone(&on_track_dropped),
                Arc::clone(&on_track_offers),
                on_track_cancel.cancelled(),
            ));
            Box::pin(async {})
        }));

        let audio_sender = audio_sender.ok_or(RtcError::NoAudioSender)?;
        let client = Arc::new(Self {
            _api: api,
            pc,
            audio: Mutex::new((settings.audio_codec, audio)),
            audio_sender,
            video,
            audio_seq: AtomicU16::new(random_u16()),
            video_seq: AtomicU16::new(random_u16()),
            remote,
            dropped,
            offers,
            cancel,
        });
        Ok((client, ClientStreams { media, feedback }))
    }

    /// Applies the SFU's offer and returns the answer (candidates
    /// included).
    ///
    /// # Errors
    /// When the offer does not apply.
    pub async fn handle_offer(&self, offer: &str) -> Result<String, RtcError> {
        let offer = RTCSessionDescription::offer(offer.to_owned())?;
        self.pc.set_remote_description(offer).await?;
        self.offers.fetch_add(1, Relaxed);
        let answer = self.pc.create_answer(None).await?;
        let mut gathered = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(answer).await?;
        if tokio::time::timeout(GATHER_TIMEOUT, gathered.recv())
            .await
            .is_err()
        {
            return Err(RtcError::GatheringTimeout(GATHER_TIMEOUT));
        }
        Ok(self
            .pc
            .local_description()
            .await
            .ok_or(RtcError::NoLocalDescription)?
            .sdp)
    }

    /// Publishes one audio packet. `Ok(false)` while the track is not
    /// negotiated yet (the packet is dropped).
    ///
    /// # Errors
    /// When writing fails.
    pub async fn send_audio(&self, payload: &[u8], timestamp: u32) -> Result<bool, RtcError> {
        let seq = self.audio_seq.fetch_add(1, Relaxed);
        let track = Arc::clone(&lock(&self.audio).1);
        write(
            &track,
            Bytes::copy_from_slice(payload),
            timestamp,
            seq,
            false,
        )
        .await
    }

    /// The codec of the published audio track.
    pub fn audio_codec(&self) -> Codec {
        lock(&self.audio).0
    }

    /// Publishes audio in `codec` from the next packet on: the same track
    /// (SSRC and sequence numbers go on), its payload type changed. Every
    /// audio codec is negotiated with the SFU, so no new offer is needed.
    ///
    /// # Errors
    /// When `codec` is not an audio codec, or the negotiated session does
    /// not have it (the track stays as it was).
    pub async fn set_audio_codec(&self, codec: Codec) -> Result<(), RtcError> {
        if !codec.is_audio() {
            return Err(RtcError::NotAudio(codec));
        }
        if self.audio_codec() == codec {
            return Ok(());
        }
        let track = Arc::new(TrackLocalStaticRTP::new(
            api::capability(codec),
            "audio".to_owned(),
            "self".to_owned(),
        ));
        self.audio_sender
            .replace_track(Some(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>))
            .await?;
        *lock(&self.audio) = (codec, track);
        Ok(())
    }

    /// Publishes one video packet; `marker` ends a frame.
    ///
    /// # Errors
    /// When writing fails.
    pub async fn send_video(
        &self,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
    ) -> Result<bool, RtcError> {
        let seq = self.video_seq.fetch_add(1, Relaxed);
        write(
            &self.video,
            Bytes::copy_from_slice(payload),
            timestamp,
            seq,
            marker,
        )
        .await
    }

    /// Publishes one whole video frame (sealed), split over as many
    /// packets as it needs ([`frames::fragments`]). `Ok(false)` when a
    /// packet was not sent (the track is not negotiated yet): the frame is
    /// then lost to its receivers, who will ask for a key frame.
    ///
    /// # Errors
    /// When writing fails.
    pub async fn send_video_frame(&self, sealed: &[u8], timestamp: u32) -> Result<bool, RtcError> {
        let mut all = true;
        for (descriptor, body) in frames::fragments(sealed, frames::MAX_PAYLOAD) {
            // One buffer per packet: descriptor and part, handed over.
            let payload = Bytes::from([&[descriptor][..], body].concat());
            let seq = self.video_seq.fetch_add(1, Relaxed);
            let end = descriptor & frames::END != 0;
            all &= write(&self.video, payload, timestamp, seq, end).await?;
        }
        Ok(all)
    }

    /// Asks for a key frame of the received track `ssrc` (a PLI).
    ///
    /// # Errors
    /// When writing fails.
    pub async fn request_key_frame(&self, ssrc: u32) -> Result<(), RtcError> {
        self.pc
            .write_rtcp(&[Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            })])
            .await
            .map(drop)
            .map_err(RtcError::from)
    }

    /// Asks for a key frame of the received track `ssrc` with a full intra
    /// request (a FIR), whose command sequence number is `sequence`.
    ///
    /// # Errors
    /// When writing fails.
    pub async fn request_full_intra(&self, ssrc: u32, sequence: u8) -> Result<(), RtcError> {
        self.pc
            .write_rtcp(&[Box::new(FullIntraRequest {
                sender_ssrc: 0,
                media_ssrc: ssrc,
                fir: vec![FirEntry {
                    ssrc,
                    sequence_number: sequence,
                }],
            })])
            .await
            .map(drop)
            .map_err(RtcError::from)
    }

    /// Asks for the packets `sequences` of the received track `ssrc` again
    /// (a generic NACK).
    ///
    /// # Errors
    /// When writing fails.
    pub async fn send_nack(&self, ssrc: u32, sequences: &[u16]) -> Result<(), RtcError> {
        self.pc
            .write_rtcp(&[Box::new(TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc: ssrc,
                nacks: nack_pairs(sequences),
            })])
            .await
            .map(drop)
            .map_err(RtcError::from)
    }

    /// Sends a receiver report claiming `fraction_lost` (out of 256) for
    /// every received track: simulates a subscriber on a lossy link.
    ///
    /// # Errors
    /// When writing fails.
    pub async fn report_loss(&self, fraction_lost: u8) -> Result<(), RtcError> {
        let reports = self
            .ssrcs()
            .into_iter()
            .map(|ssrc| ReceptionReport {
                ssrc,
                fraction_lost,
                ..Default::default()
            })
            .collect();
        self.pc
            .write_rtcp(&[Box::new(ReceiverReport {
                ssrc: 0,
                reports,
                ..Default::default()
            })])
            .await
            .map(drop)
            .map_err(RtcError::from)
    }

    /// Sends a REMB estimate of `bitrate` bits per second for every received
    /// track: simulates a subscriber with little bandwidth.
    ///
    /// # Errors
    /// When writing fails.
    pub async fn report_bandwidth(&self, bitrate: f32) -> Result<(), RtcError> {
        self.pc
            .write_rtcp(&[Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 0,
                bitrate,
                ssrcs: self.ssrcs(),
            })])
            .await
            .map(drop)
            .map_err(RtcError::from)
    }

    /// What arrived on each received track so far.
    #[must_use]
    pub fn stats(&self) -> Vec<TrackStats> {
        lock(&self.remote).values().cloned().collect()
    }

    /// Received packets dropped because the caller did not keep up.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// The peer connection's state.
    #[must_use]
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        self.pc.connection_state()
    }

    /// Closes the peer connection and stops the client's tasks.
    pub async fn close(&self) {
        self.cancel.cancel();
        let _ = self.pc.close().await;
    }

    fn ssrcs(&self) -> Vec<u32> {
        lock(&self.remote).keys().copied().collect()
    }
}

/// Packs sequence numbers into NACK pairs (RFC 4585 §6.2.1).
fn nack_pairs(sequences: &[u16]) -> Vec<NackPair> {
    let mut pairs: Vec<NackPair> = Vec::new();
    for &seq in sequences {
        if let Some(last) = pairs.last_mut() {
            let distance = seq.wrapping_sub(last.packet_id);
            if (1..=16).contains(&distance) {
                last.lost_packets |= 1 << (distance - 1);
                continue;
            }
        }
        pairs.push(NackPair {
            packet_id: seq,
            lost_packets: 0,
        });
    }
    pairs
}

impl Drop for RtcClient {
    fn drop(&mut self) {
        self.cancel.cancel();
        let pc = Arc::clone(&self.pc);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

async fn write(
    track: &TrackLocalStaticRTP,
    payload: Bytes,
    timestamp: u32,
    sequence_number: u16,
    marker: bool,
) -> Result<bool, RtcError> {
    let packet = Packet {
        header: Header {
            version: 2,
            marker,
            sequence_number,
            timestamp,
            ..Default::default()
        },
        payload,
    };
    Ok(track.write_rtp(&packet).await? > 0)
}

async fn read_track(
    track: Arc<TrackRemote>,
    remote: Arc<Mutex<HashMap<u32, TrackStats>>>,
    tx: mpsc::Sender<Received>,
    dropped: Arc<AtomicU64>,
    offers: Arc<AtomicU64>,
    cancelled: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(cancelled);
    let ssrc = track.ssrc();
    let mut seen_offers = offers.load(Relaxed);
    let video = track.kind() == RTPCodecType::Video;
    let mut codec = Codec::from_mime(&track.codec().capability.mime_type);
    let mut payload_type = track.payload_type();
    let (mut track_id, mut stream_id) = (track.id(), track.stream_id());
    lock(&remote).insert(
        ssrc,
        TrackStats {
            track_id: track_id.clone(),
            stream_id: stream_id.clone(),
            ssrc,
            video,
            packets: 0,
            bytes: 0,
        },
    );
    loop {
        let packet = tokio::select! {
            () = &mut cancelled => break,
            read = track.read_rtp() => match read {
                Ok((packet, _)) => packet,
                Err(_) => break,
            },
        };
        // The SFU may hand this SSRC to another publisher (a parked
        // transceiver taken over): webrtc-rs renames the track when it
        // applies the offer that says so, and the SFU sends nothing of
        // the new publisher's on it before that offer is answered.
        let applied = offers.load(Relaxed);
        if applied != seen_offers {
            seen_offers = applied;
            let (id, stream) = (track.id(), track.stream_id());
            if stream != stream_id || id != track_id {
                (track_id, stream_id) = (id, stream);
                if let Some(stats) = lock(&remote).get_mut(&ssrc) {
                    stats.track_id.clone_from(&track_id);
                    stats.stream_id.clone_from(&stream_id);
                    stats.packets = 0;
                    stats.bytes = 0;
                }
            }
        }
        if packet.header.payload_type != payload_type {
            // The sender changed codec on the same track (a desktop while
            // an intercom is in the call): webrtc-rs looked the new payload
            // type up among the negotiated ones.
            payload_type = packet.header.payload_type;
            codec = Codec::from_mime(&track.codec().capability.mime_type);
        }
        if let Some(stats) = lock(&remote).get_mut(&ssrc) {
            stats.packets += 1;
            stats.bytes += packet.payload.len() as u64;
        }
        let received = Received {
            track_id: track_id.clone(),
            stream_id: stream_id.clone(),
            ssrc,
            video,
            codec,
            timestamp: packet.header.timestamp,
            sequence: packet.header.sequence_number,
            marker: packet.header.marker,
            payload_type: packet.header.payload_type,
            payload: packet.payload,
        };
        if tx.try_send(received).is_err() {
            dropped.fetch_add(1, Relaxed);
        }
    }
}

async fn read_feedback(
    sender: Arc<RTCRtpSender>,
    video: bool,
    tx: mpsc::Sender<Feedback>,
    cancelled: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(cancelled);
    loop {
        let packets = tokio::select! {
            () = &mut cancelled => break,
            read = sender.read_rtcp() => match read {
                Ok((packets, _)) => packets,
                Err(_) => break,
            },
        };
        for packet in packets {
            let any = packet.as_any();
            let event = if any.downcast_ref::<PictureLossIndication>().is_some()
                || any.downcast_ref::<FullIntraRequest>().is_some()
            {
                Feedback::KeyFrame { video }
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                let sequences = nack.nacks.iter().flat_map(NackPair::packet_list).collect();
                Feedback::Nack { video, sequences }
            } else {
                continue;
            };
            let _ = tx.try_send(event);
        }
    }
}
