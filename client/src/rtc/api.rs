//! The client's webrtc-rs API object: Satsuma's codecs with their RTP facts
//! from `core::media`, webrtc-rs's default interceptors (a client answers
//! NACKs from its own send buffer and reports reception) and host
//! candidates on the given addresses only.

use std::net::IpAddr;
use std::sync::Arc;

use satsuma_core::media::Codec;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};

use super::RtcError;

/// The capability Satsuma registers and publishes for `codec`.
pub(super) fn capability(codec: Codec) -> RTCRtpCodecCapability {
    let rtp = codec.rtp();
    RTCRtpCodecCapability {
        mime_type: rtp.mime.to_owned(),
        clock_rate: rtp.clock_rate,
        // webrtc-rs writes no channel count for 0, as SDP does for mono.
        channels: if rtp.channels == 1 { 0 } else { rtp.channels },
        sdp_fmtp_line: rtp.fmtp.to_owned(),
        rtcp_feedback: rtp
            .feedback
            .iter()
            .map(|f| RTCPFeedback {
                typ: f.kind.to_owned(),
                parameter: f.parameter.to_owned(),
            })
            .collect(),
    }
}

/// The API every peer connection of a client is made from. `ips` limits
/// host candidates to those addresses (loopback included when listed);
/// empty means every interface. IPv4 UDP only, no mDNS.
pub(super) fn api(ips: &[IpAddr]) -> Result<API, RtcError> {
    let mut engine = MediaEngine::default();
    for codec in Codec::ALL {
        let kind = if codec.is_audio() {
            RTPCodecType::Audio
        } else {
            RTPCodecType::Video
        };
        engine.register_codec(
            RTCRtpCodecParameters {
                capability: capability(codec),
                payload_type: codec.rtp().payload_type,
                ..Default::default()
            },
            kind,
        )?;
    }
    let registry = webrtc::api::interceptor_registry::register_default_interceptors(
        Registry::new(),
        &mut engine,
    )?;
    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    if !ips.is_empty() {
        if ips.iter().any(IpAddr::is_loopback) {
            settings.set_include_loopback_candidate(true);
        }
        let allowed: Arc<[IpAddr]> = ips.into();
        settings.set_ip_filter(Box::new(move |ip| allowed.contains(&ip)));
    }
    settings.set_ice_multicast_dns_mode(webrtc::ice::mdns::MulticastDnsMode::Disabled);
    Ok(APIBuilder::new()
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}
