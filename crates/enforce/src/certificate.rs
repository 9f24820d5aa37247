//! The client certificate of the connection a request came on, read alike at every
//! enforcement point: the gateway's own TLS handshake hands over DER, nginx
//! (`$ssl_client_escaped_cert`) and Envoy (`attributes.source.certificate`) hand over
//! URL-escaped PEM, and Envoy's `x-forwarded-client-cert` (XFCC) names the certificate's
//! SHA-256 in hex. Each becomes the RFC 8705 thumbprint a certificate-bound token's
//! `cnf.x5t#S256` must equal ([`steward_token::Proof::ClientCert`]).
//!
//! The point never judges who issued the certificate: the TLS layer proved the client
//! holds its key, and the token names the one certificate it is bound to.

use base64::Engine;
use percent_encoding::percent_decode_str;

use crate::credential::CredentialError;

/// PEM certificates larger than this are refused unread: a client certificate is a few
/// kilobytes, and the value arrives from a header a proxy set.
const MAX_PEM_BYTES: usize = 64 * 1024;

/// A client certificate as the protocol that received the request learned of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerCertificate<'a> {
    /// The connection presented none, or the protocol cannot tell.
    #[default]
    None,
    /// DER, from this point's own TLS handshake.
    Der(&'a [u8]),
    /// URL-escaped PEM of the leaf certificate, as nginx's `$ssl_client_escaped_cert` and
    /// Envoy's `source.certificate` give it. An empty value means none.
    EscapedPem(&'a str),
    /// An `x-forwarded-client-cert` header as Envoy writes it, whose `Hash` is the SHA-256
    /// of the DER certificate in hex. Only for a deployment whose edge proxy sets it (and
    /// strips the client's): see [`xfcc_hash`].
    Xfcc(&'a str),
    /// Reported more than once for one request (a header set twice), or not as text:
    /// which certificate the connection presented cannot be told, so the request is
    /// refused.
    Unreadable,
}

impl PeerCertificate<'_> {
    /// The certificate's RFC 8705 thumbprint (base64url SHA-256 of the DER), `None` when
    /// there is no certificate; an error when the value cannot be read as one (the
    /// request is refused rather than treated as carrying none).
    pub fn thumbprint(&self) -> Result<Option<String>, CredentialError> {
        let unreadable = |why: &str| CredentialError::Certificate(why.to_owned());
        match *self {
            Self::None => Ok(None),
            Self::Unreadable => Err(unreadable(
                "it was reported more than once or not as text; the proxy in front must set it exactly once",
            )),
            Self::Der([]) => Ok(None),
            Self::Der(der) => Ok(Some(steward_token::certificate_thumbprint(der))),
            Self::EscapedPem("") => Ok(None),
            Self::EscapedPem(escaped) => {
                if escaped.len() > MAX_PEM_BYTES {
                    return Err(unreadable("it is larger than any client certificate"));
                }
                let pem = percent_decode_str(escaped)
                    .decode_utf8()
                    .map_err(|_| unreadable("it is not URL-escaped PEM text"))?;
                let der = first_pem_certificate(&pem)
                    .ok_or_else(|| unreadable("it holds no `-----BEGIN CERTIFICATE-----` block"))?;
                Ok(Some(steward_token::certificate_thumbprint(&der)))
            }
            Self::Xfcc(header) => {
                let bytes = decode_hex_sha256(xfcc_hash(header)?)
                    .ok_or_else(|| unreadable("its `Hash` is not a hex SHA-256"))?;
                Ok(Some(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
                ))
            }
        }
    }
}

/// The DER of the first `CERTIFICATE` block of `pem`.
fn first_pem_certificate(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let body = pem.split_once(BEGIN)?.1.split_once(END)?.0;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    (!der.is_empty()).then_some(der)
}

/// 64 hex digits as 32 bytes.
fn decode_hex_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        let digit = |c: &u8| (*c as char).to_digit(16);
        *byte = u8::try_from(digit(high)? * 16 + digit(low)?).ok()?;
    }
    Some(out)
}

/// The certificate hash Envoy forwards in `x-forwarded-client-cert` (XFCC): the `Hash`
/// of its one element. Several elements (a chain of proxies, each adding the client it
/// saw) are refused: which of them is the caller here depends on a deployment this point
/// cannot see, so an operator who trusts XFCC sets up exactly one hop to write it.
fn xfcc_hash(value: &str) -> Result<&str, CredentialError> {
    let unreadable = |why: &str| CredentialError::Certificate(why.to_owned());
    // Quoted values (`Subject="CN=a,O=b"`) may hold commas and semicolons.
    let mut elements = 1;
    let mut quoted = false;
    let mut hash = None;
    let mut start = 0;
    let bytes = value.as_bytes();
    for i in 0..=bytes.len() {
        let at = bytes.get(i).copied();
        match at {
            Some(b'"') => quoted = !quoted,
            Some(b',' | b';') | None if !quoted => {
                let pair = value.get(start..i).unwrap_or_default().trim();
                if let Some((key, v)) = pair.split_once('=')
                    && key.trim().eq_ignore_ascii_case("hash")
                {
                    if hash.is_some() {
                        return Err(unreadable(
                            "`x-forwarded-client-cert` names more than one `Hash`",
                        ));
                    }
                    hash = Some(v.trim().trim_matches('"'));
                }
                if at == Some(b',') {
                    elements += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(unreadable(
            "`x-forwarded-client-cert` has an unclosed quote",
        ));
    }
    if elements > 1 {
        return Err(unreadable(
            "`x-forwarded-client-cert` has several elements; exactly one proxy hop may write it",
        ));
    }
    hash.ok_or_else(|| unreadable("`x-forwarded-client-cert` carries no `Hash`"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A self-signed certificate made for the test, and its PEM.
    fn certificate() -> (Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), cert.pem())
    }

    fn escape(pem: &str) -> String {
        percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    #[test]
    fn every_form_of_one_certificate_has_one_thumbprint() {
        let (der, pem) = certificate();
        let want = steward_token::certificate_thumbprint(&der);
        let hex: String = {
            use sha2::Digest;
            sha2::Sha256::digest(&der)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let escaped = escape(&pem);
        let xfcc = format!("By=spiffe://acme.example/gw;Hash={hex};Subject=\"CN=a,O=b;c\"");
        let upper = format!("Hash={}", hex.to_uppercase());
        for form in [
            PeerCertificate::Der(&der),
            PeerCertificate::EscapedPem(&escaped),
            PeerCertificate::Xfcc(&xfcc),
            PeerCertificate::Xfcc(&upper),
        ] {
            assert_eq!(form.thumbprint().unwrap().as_deref(), Some(want.as_str()));
        }
        assert_eq!(xfcc_hash(&xfcc).unwrap(), hex);
    }

    #[test]
    fn nothing_is_none_and_garbage_is_refused() {
        assert_eq!(PeerCertificate::None.thumbprint().unwrap(), None);
        assert_eq!(PeerCertificate::EscapedPem("").thumbprint().unwrap(), None);
        let zz = format!("Hash={}", "zz".repeat(32));
        for bad in [
            PeerCertificate::EscapedPem("not%20a%20certificate"),
            PeerCertificate::EscapedPem("%FF%FE"),
            PeerCertificate::EscapedPem(
                "-----BEGIN%20CERTIFICATE-----%0A!!!%0A-----END%20CERTIFICATE-----",
            ),
            PeerCertificate::Xfcc("Hash=abc"),
            PeerCertificate::Xfcc(&zz),
        ] {
            assert!(bad.thumbprint().is_err(), "{bad:?}");
        }
        let (_, pem) = certificate();
        let huge = escape(&pem).repeat(200);
        assert!(PeerCertificate::EscapedPem(&huge).thumbprint().is_err());
        let hash = "a".repeat(64);
        for bad in [
            format!("Hash={hash},Hash={hash}"),
            format!("Hash={hash};Hash={hash}"),
            "By=x".to_owned(),
            format!("Hash={hash};Subject=\"open"),
        ] {
            assert!(xfcc_hash(&bad).is_err(), "{bad}");
        }
    }
}
