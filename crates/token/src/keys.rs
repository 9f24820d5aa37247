//! ES256 keys: the control plane's signing keys, the public keys clients register, their
//! JWK form (RFC 7517/7518) and RFC 7638 thumbprints, and sealing of private keys under a
//! key-encryption key so the database alone never reveals them.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    ParsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::TokenError;

/// The one signature algorithm Steward issues and accepts.
pub const ALG: &str = "ES256";
/// The verifier for a client key registered on an identity (in the repository or through
/// the API): the one conversion the token service, the parser and every gateway share.
pub fn client_public_key(k: &steward_model::ClientKey) -> Result<PublicKey, TokenError> {
    Jwk {
        kty: k.kty.clone(),
        crv: k.crv.clone(),
        x: k.x.clone(),
        y: k.y.clone(),
        kid: Some(k.kid.clone()),
        alg: k.alg.clone(),
        use_: None,
    }
    .to_public_key()
}

/// Length of a P-256 coordinate.
const COORD: usize = 32;

/// A public JSON Web Key. Only EC P-256 keys are accepted; `kid` names the key in token
/// headers and JWKS documents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl Jwk {
    fn from_point(point: &[u8]) -> Result<Self, TokenError> {
        let (x, y) = split_point(point)?;
        Ok(Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: B64URL.encode(x),
            y: B64URL.encode(y),
            kid: None,
            alg: None,
            use_: None,
        })
    }

    /// The uncompressed SEC1 point (0x04 ‖ x ‖ y), after checking the key's shape.
    fn point(&self) -> Result<Vec<u8>, TokenError> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(TokenError::Key(format!(
                "only EC P-256 keys are accepted (got kty `{}`, crv `{}`)",
                self.kty, self.crv
            )));
        }
        if let Some(alg) = &self.alg
            && alg != ALG
        {
            return Err(TokenError::Key(format!("key alg `{alg}`: only {ALG}")));
        }
        let coord = |name: &str, v: &str| -> Result<Vec<u8>, TokenError> {
            let bytes = B64URL
                .decode(v)
                .map_err(|_| TokenError::Key(format!("`{name}` is not base64url")))?;
            if bytes.len() != COORD {
                return Err(TokenError::Key(format!(
                    "`{name}` is {} bytes, a P-256 coordinate is {COORD}",
                    bytes.len()
                )));
            }
            Ok(bytes)
        };
        let mut point = Vec::with_capacity(1 + 2 * COORD);
        point.push(0x04);
        point.extend(coord("x", &self.x)?);
        point.extend(coord("y", &self.y)?);
        Ok(point)
    }

    /// RFC 7638 thumbprint: base64url SHA-256 of the required members in lexical order.
    /// Used as the `kid` of keys Steward generates and as DPoP's `jkt`.
    pub fn thumbprint(&self) -> String {
        // serde_json escapes strings, so a hostile member cannot break the JSON shape.
        let canonical =
            serde_json::json!({"crv": self.crv, "kty": self.kty, "x": self.x, "y": self.y});
        B64URL.encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// Parses the key into a verifier; the point must lie on the curve.
    pub fn to_public_key(&self) -> Result<PublicKey, TokenError> {
        let point = self.point()?;
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).map_err(|e| {
            TokenError::Key(format!(
                "not a valid P-256 public key (is the point on the curve?): {e}"
            ))
        })?;
        let thumbprint = self.thumbprint();
        let kid = self.kid.clone().unwrap_or_else(|| thumbprint.clone());
        let mut jwk = self.clone();
        jwk.kid = Some(kid.clone());
        Ok(PublicKey {
            kid,
            thumbprint,
            parsed,
            jwk,
        })
    }
}

fn split_point(point: &[u8]) -> Result<(&[u8], &[u8]), TokenError> {
    match point {
        [0x04, rest @ ..] if rest.len() == 2 * COORD => Ok(rest.split_at(COORD)),
        _ => Err(TokenError::Key("not an uncompressed P-256 point".into())),
    }
}

/// A key that verifies ES256 signatures, parsed once.
#[derive(Clone)]
pub struct PublicKey {
    kid: String,
    thumbprint: String,
    parsed: ParsedPublicKey,
    jwk: Jwk,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("kid", &self.kid).finish()
    }
}

impl PublicKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The RFC 7638 thumbprint, whatever the `kid`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The JWK form, with `kid` set.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Checks a raw (r ‖ s, 64 bytes) ES256 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        self.parsed
            .verify_sig(message, signature)
            .map_err(|_| TokenError::Signature)
    }
}

/// A private ES256 key of the control plane. Never serialized: it leaves memory only
/// sealed under the key-encryption key ([`Kek::seal`]).
pub struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key, with its PKCS#8 encoding for sealing. The `kid` is the key's RFC 7638
    /// thumbprint, so it is stable and says nothing about when it was made.
    pub fn generate() -> Result<(Self, Vec<u8>), TokenError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| TokenError::Key("cannot generate a P-256 key".into()))?;
        let pkcs8 = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    /// Loads a key from a PKCS#8 PEM (`BEGIN PRIVATE KEY`), as `steward identity key
    /// create` writes it: what a workload or an enforcement point reads at start.
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, TokenError> {
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        if body.is_empty() {
            return Err(TokenError::Key(
                "no `BEGIN PRIVATE KEY` block (a PKCS#8 PEM, as `steward identity key create` writes)".into(),
            ));
        }
        let der = STANDARD
            .decode(body.trim())
            .map_err(|_| TokenError::Key("the PEM body is not base64".into()))?;
        Self::from_pkcs8(&der)
    }

    /// Loads a key from its PKCS#8 encoding.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TokenError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|_| TokenError::Key("not a PKCS#8 P-256 private key".into()))?;
        let mut jwk = Jwk::from_point(pair.public_key().as_ref())?;
        jwk.alg = Some(ALG.into());
        jwk.use_ = Some("sig".into());
        let public = jwk.to_public_key()?;
        Ok(Self {
            kid: public.kid().to_string(),
            pair,
            public,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// A raw (r ‖ s) ES256 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let rng = SystemRandom::new();
        self.pair
            .sign(&rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| TokenError::Key("signing failed".into()))
    }
}

/// The key-encryption key: AES-256-GCM, 32 bytes, given base64-encoded in a file or an
/// environment variable. Seals private keys with their `kid` as associated data, so a
/// sealed key moved onto another row does not open.
pub struct Kek(LessSafeKey);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

/// Prefix of a sealed key, naming the format so it can change later.
const SEALED_V1: &str = "v1.";

impl Kek {
    /// Parses the base64 text of a 32-byte key (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, TokenError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| TokenError::Key("the key-encryption key is not base64".into()))?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() != 32 {
            return Err(TokenError::Key(format!(
                "the key-encryption key is {} bytes; it must be 32 (generate one with `openssl rand -base64 32`)",
                bytes.len()
            )));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| TokenError::Key("unusable key-encryption key".into()))?;
        Ok(Kek(LessSafeKey::new(key)))
    }

    /// A new random key-encryption key, as the base64 text [`Kek::from_base64`] reads.
    pub fn generate_base64() -> Result<String, TokenError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| TokenError::Key("no randomness".into()))?;
        Ok(STANDARD.encode(bytes))
    }

    /// Encrypts `secret` bound to `kid`.
    pub fn seal(&self, kid: &str, secret: &[u8]) -> Result<String, TokenError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| TokenError::Key("no randomness".into()))?;
        let mut buf = secret.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .map_err(|_| TokenError::Key("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(buf);
        Ok(format!("{SEALED_V1}{}", B64URL.encode(out)))
    }

    /// Whether `text` is in the sealed format (as opposed to a key an older release
    /// stored in plaintext).
    pub fn is_sealed(&self, text: &str) -> bool {
        text.starts_with(SEALED_V1)
    }

    /// Decrypts what [`Kek::seal`] produced for `kid`.
    pub fn open(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, TokenError> {
        let wrong = || {
            TokenError::Key(format!(
                "signing key `{kid}` does not open with the configured key-encryption key (was the key-encryption key changed?)"
            ))
        };
        let body = sealed.strip_prefix(SEALED_V1).ok_or_else(|| {
            TokenError::Key(format!("signing key `{kid}`: unknown sealed format"))
        })?;
        let raw = B64URL.decode(body).map_err(|_| wrong())?;
        if raw.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buf = ct.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| wrong())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_kek_and_kid() {
        let kek = Kek::from_base64(&Kek::generate_base64().unwrap()).unwrap();
        let other = Kek::from_base64(&Kek::generate_base64().unwrap()).unwrap();
        let sealed = kek.seal("k1", b"secret").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(kek.open("k1", &sealed).unwrap(), b"secret");
        assert!(kek.open("k2", &sealed).is_err());
        let err = other.open("k1", &sealed).unwrap_err().to_string();
        assert!(
            err.contains("key-encryption key was changed") || err.contains("changed"),
            "{err}"
        );
        assert!(
            Kek::from_base64("c2hvcnQ=")
                .unwrap_err()
                .to_string()
                .contains("32")
        );
    }

    #[test]
    fn generated_keys_round_trip_and_sign() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.kid(), key.public_key().jwk().thumbprint());
        let sig = key.sign(b"hello").unwrap();
        assert_eq!(sig.len(), 64);
        again.public_key().verify(b"hello", &sig).unwrap();
        assert_eq!(
            again.public_key().verify(b"hellO", &sig),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1 uses an RSA key; the expected value for this EC key was computed
        // independently (Python's json + hashlib, sorted keys, no whitespace).
        let jwk = Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
            kid: None,
            alg: None,
            use_: None,
        };
        assert_eq!(
            jwk.thumbprint(),
            "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
        );
    }

    #[test]
    fn bad_jwks_are_refused_with_reasons() {
        let good = SigningKey::generate().unwrap().0.public_key().jwk().clone();
        let mut off_curve = good.clone();
        off_curve.y = B64URL.encode([7u8; 32]);
        assert!(
            off_curve
                .to_public_key()
                .unwrap_err()
                .to_string()
                .contains("valid P-256")
        );
        let mut rsa = good.clone();
        rsa.kty = "RSA".into();
        assert!(
            rsa.to_public_key()
                .unwrap_err()
                .to_string()
                .contains("P-256")
        );
        let mut short = good;
        short.x = B64URL.encode([1u8; 31]);
        assert!(
            short
                .to_public_key()
                .unwrap_err()
                .to_string()
                .contains("31 bytes")
        );
    }
}
