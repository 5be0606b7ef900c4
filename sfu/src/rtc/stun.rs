//! Which peer connection a STUN check on a shard's shared socket is for:
//! the ufrag its USERNAME names. `rtc`'s STUN decoder reads the message;
//! the peer connection then checks the rest (MESSAGE-INTEGRITY with the
//! password). This only picks which one gets to check it.

use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::Message;

/// STUN's magic cookie, bytes 4..8 of every message.
const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER: usize = 20;

/// Whether `datagram` is a STUN message (RFC 7983's first-byte range, and
/// the magic cookie): a cheap test, as most datagrams are media.
#[must_use]
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER && datagram[0] < 4 && datagram[4..8] == MAGIC
}

/// The local ufrag a Binding request names: its USERNAME is
/// `<receiver's ufrag>:<sender's ufrag>` (RFC 8445 §7.2.2), and the
/// receiver is this server. `None` for anything else.
#[must_use]
pub fn local_ufrag(datagram: &[u8]) -> Option<String> {
    if !is_stun(datagram) {
        return None;
    }
    let mut message = Message::new();
    message.unmarshal_binary(datagram).ok()?;
    let username = String::from_utf8(message.get(ATTR_USERNAME).ok()?).ok()?;
    let (local, _) = username.split_once(':')?;
    (!local.is_empty()).then(|| local.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code.
mod tests {
    use super::*;

    const USERNAME: u16 = 0x0006;

    fn binding(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attributes {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        m.extend_from_slice(&MAGIC);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn the_username_names_the_receivers_ufrag_first() {
        let m = binding(&[(0x8022, b"soft"), (USERNAME, b"srvUfrag:cli")]);
        assert!(is_stun(&m));
        assert_eq!(local_ufrag(&m).as_deref(), Some("srvUfrag"));
    }

    #[test]
    fn anything_else_names_no_one() {
        // No USERNAME, an empty local part, no colon, not UTF-8.
        for attrs in [
            vec![(0x8022, &b"soft"[..])],
            vec![(USERNAME, &b":cli"[..])],
            vec![(USERNAME, &b"nocolon"[..])],
            vec![(USERNAME, &[0xff, b':', b'a'][..])],
        ] {
            assert_eq!(local_ufrag(&binding(&attrs)), None);
        }
        // RTP, DTLS, a short or cookie-less datagram.
        assert!(!is_stun(&[0x80; 40]));
        assert!(!is_stun(&[22; 40]));
        assert!(!is_stun(&[0; 10]));
        let mut m = binding(&[(USERNAME, b"a:b")]);
        m[4] = 0;
        assert_eq!(local_ufrag(&m), None);
    }

    #[test]
    fn lengths_that_lie_name_no_one() {
        let mut m = binding(&[(USERNAME, b"a:b")]);
        // The attribute claims more than the datagram holds.
        m[HEADER + 3] = 200;
        assert_eq!(local_ufrag(&m), None);
        // The header claims more than there is.
        let mut m = binding(&[(USERNAME, b"a:b")]);
        m[2] = 0xff;
        assert_eq!(local_ufrag(&m), None);
        // Every truncation of a good message is handled.
        let m = binding(&[(0x8022, b"software"), (USERNAME, b"abc:def")]);
        for n in 0..m.len() {
            let _ = local_ufrag(&m[..n]);
        }
    }
}
