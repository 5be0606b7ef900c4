//! Building the SFU's webrtc-rs API object: the codecs Satsuma carries (their
//! RTP facts come from `core::media`), the interceptors and the ICE network
//! settings.

use std::net::IpAddr;
use std::sync::Arc;

use satsuma_core::media::Codec;
use satsuma_core::media::Feedback;
use webrtc::api::media_engine::MediaEngine;
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

/// The ICE side of the settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Network {
    pub port_min: u16,
    pub port_max: u16,
    pub ips: Vec<IpAddr>,
    pub nat_1to1_ips: Vec<String>,
    pub udp4_only: bool,
}

fn feedback(f: &Feedback) -> RTCPFeedback {
    RTCPFeedback {
        typ: f.kind.to_owned(),
        parameter: f.parameter.to_owned(),
    }
}

/// The codec capability Satsuma registers for `codec`, from its RTP facts
/// in `core::media`.
pub(crate) fn capability(codec: Codec) -> RTCRtpCodecCapability {
    let rtp = codec.rtp();
    RTCRtpCodecCapability {
        mime_type: rtp.mime.to_owned(),
        clock_rate: rtp.clock_rate,
        // webrtc-rs writes no channel count for 0, as SDP does for mono.
        channels: if rtp.channels == 1 { 0 } else { rtp.channels },
        sdp_fmtp_line: rtp.fmtp.to_owned(),
        rtcp_feedback: rtp.feedback.iter().map(feedback).collect(),
    }
}

fn media_engine() -> Result<MediaEngine, RtcError> {
    let mut engine = MediaEngine::default();
    for codec in Codec::ALL {
        let capability = capability(codec);
        let kind = if codec.is_audio() {
            RTPCodecType::Audio
        } else {
            RTPCodecType::Video
        };
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    capability,
                    payload_type: codec.rtp().payload_type,
                    ..Default::default()
                },
                kind,
            )
            .map_err(RtcError::webrtc)?;
    }
    Ok(engine)
}

/// The API object every peer connection of the SFU is made from.
pub(crate) fn api(network: &Network) -> Result<API, RtcError> {
    let engine = media_engine()?;
    // Sender and receiver reports only: NACKs, PLIs and FIRs pass through
    // to the publisher; the SFU has no NACK responder of its own, no TWCC.
    let registry = webrtc::api::interceptor_registry::configure_rtcp_reports(Registry::new());
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

#[cfg(test)]
mod tests {
    use webrtc::api::media_engine::{
        MIME_TYPE_G722, MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_VP8,
    };

    use super::*;

    #[test]
    fn core_names_each_codec_as_webrtc_rs_does() {
        for (codec, mime) in [
            (Codec::Opus, MIME_TYPE_OPUS),
            (Codec::Pcmu, MIME_TYPE_PCMU),
            (Codec::Pcma, MIME_TYPE_PCMA),
            (Codec::G722, MIME_TYPE_G722),
            (Codec::Vp8, MIME_TYPE_VP8),
        ] {
            assert_eq!(Codec::from_mime(mime), Some(codec));
        }
    }

    #[test]
    fn every_codec_registers() {
        assert!(media_engine().is_ok());
    }
}
