//! Building the webrtc-rs API objects both the SFU and the client use: the
//! codecs Satsuma carries, the RTCP feedback they negotiate, the
//! interceptors and the ICE network settings.

use std::net::IpAddr;
use std::sync::Arc;

use satsuma_core::media::Codec;
use webrtc::api::media_engine::{
    MIME_TYPE_G722, MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_VP8, MediaEngine,
};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_network::{EphemeralUDP, UDPNetwork};
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::interceptor::registry::Registry;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};

use super::RtcError;

/// The ICE side of the settings, shared by the SFU and the client.
#[derive(Debug, Clone, Default)]
pub(crate) struct Network {
    pub port_min: u16,
    pub port_max: u16,
    pub ips: Vec<IpAddr>,
    pub nat_1to1_ips: Vec<String>,
    pub udp4_only: bool,
}

/// Which side of the call the API is for: the SFU never answers NACKs from
/// a cache of its own (it relays them to the publisher); a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Sfu,
    Client,
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

/// The codec capability Satsuma registers for `codec`.
pub(crate) fn capability(codec: Codec) -> Option<RTCRtpCodecCapability> {
    let (mime, clock_rate, channels, fmtp) = match codec {
        Codec::Opus => (MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1"),
        Codec::Pcmu => (MIME_TYPE_PCMU, 8_000, 0, ""),
        Codec::Pcma => (MIME_TYPE_PCMA, 8_000, 0, ""),
        // RFC 3551: G.722's RTP clock is 8 kHz although it samples at 16.
        Codec::G722 => (MIME_TYPE_G722, 8_000, 0, ""),
        Codec::Vp8 => (MIME_TYPE_VP8, 90_000, 0, ""),
        _ => return None,
    };
    let rtcp_feedback = if codec == Codec::Vp8 {
        vec![
            feedback("goog-remb", ""),
            feedback("ccm", "fir"),
            feedback("nack", ""),
            feedback("nack", "pli"),
        ]
    } else {
        Vec::new()
    };
    Some(RTCRtpCodecCapability {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback,
    })
}

/// The payload type Satsuma offers for `codec`: the static one, except for
/// PCMU. webrtc-rs 0.17 never learns the codec of a remote track whose
/// payload type is 0 (it starts out assuming 0 and only looks up a
/// change), so PCMU gets a dynamic payload type, which RFC 3551 allows.
fn payload_type(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 107,
        Codec::Pcma => 8,
        Codec::G722 => 9,
        Codec::Vp8 => 96,
        _ => 111,
    }
}

/// The Satsuma codec a negotiated MIME type names.
pub(crate) fn codec_of(mime: &str) -> Option<Codec> {
    Codec::ALL
        .into_iter()
        .find(|&c| capability(c).is_some_and(|cap| cap.mime_type.eq_ignore_ascii_case(mime)))
}

pub(crate) fn is_audio(codec: Codec) -> bool {
    codec != Codec::Vp8
}

fn media_engine() -> Result<MediaEngine, RtcError> {
    let mut engine = MediaEngine::default();
    for codec in Codec::ALL {
        let Some(capability) = capability(codec) else {
            continue;
        };
        let kind = if is_audio(codec) {
            RTPCodecType::Audio
        } else {
            RTPCodecType::Video
        };
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    capability,
                    payload_type: payload_type(codec),
                    ..Default::default()
                },
                kind,
            )
            .map_err(RtcError::webrtc)?;
    }
    Ok(engine)
}

fn interceptors(side: Side, engine: &mut MediaEngine) -> Result<Registry, RtcError> {
    let registry = Registry::new();
    match side {
        // Sender and receiver reports only: NACKs, PLIs and FIRs pass
        // through to the publisher; no NACK responder, no TWCC.
        Side::Sfu => Ok(webrtc::api::interceptor_registry::configure_rtcp_reports(
            registry,
        )),
        Side::Client => {
            webrtc::api::interceptor_registry::register_default_interceptors(registry, engine)
                .map_err(RtcError::webrtc)
        }
    }
}

/// The API object every peer connection of one side is made from.
pub(crate) fn api(side: Side, network: &Network) -> Result<API, RtcError> {
    let mut engine = media_engine()?;
    let registry = interceptors(side, &mut engine)?;
    let mut settings = SettingEngine::default();
    if network.port_min != 0 || network.port_max != 0 {
        let ports = EphemeralUDP::new(network.port_min, network.port_max)
            .map_err(|e| RtcError::Settings(format!("UDP port range: {e}")))?;
        settings.set_udp_network(UDPNetwork::Ephemeral(ports));
    }
    if network.udp4_only {
        settings.set_network_types(vec![NetworkType::Udp4]);
    }
    if !network.ips.is_empty() {
        let ips = network.ips.clone();
        if ips.iter().any(IpAddr::is_loopback) {
            settings.set_include_loopback_candidate(true);
        }
        let allowed: Arc<[IpAddr]> = ips.into();
        settings.set_ip_filter(Box::new(move |ip| allowed.contains(&ip)));
    }
    if !network.nat_1to1_ips.is_empty() {
        settings.set_nat_1to1_ips(network.nat_1to1_ips.clone(), RTCIceCandidateType::Host);
    }
    // No mDNS: candidates carry plain addresses.
    settings.set_ice_multicast_dns_mode(webrtc::ice::mdns::MulticastDnsMode::Disabled);
    Ok(APIBuilder::new()
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}
