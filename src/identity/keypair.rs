//! The peer's long-term key pair: an X25519 static key for Noise (PROTOCOL.md §15).
//!
//! X25519 rather than ed25519: the Noise XX handshake proves possession of the static DH key
//! itself, so one X25519 key is the whole identity. The one thing signed outside a handshake,
//! the DHT address record, is signed with this same key by XEdDSA (`peer/dht_record.rs`,
//! PROTOCOL.md §17.4): no second key.

use super::PeerId;
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use std::fmt;

/// What snow's builder needs to make a key: only the DH part (25519) matters here.
const KEY_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

pub struct Identity {
    private: [u8; 32],
    public: [u8; 32],
}

impl Identity {
    /// A fresh key pair from the operating system's random source (through snow).
    pub fn generate() -> Result<Identity, String> {
        let params = KEY_PARAMS
            .parse()
            .expect("KEY_PARAMS is a valid Noise name");
        let pair = snow::Builder::new(params)
            .generate_keypair()
            .map_err(|e| format!("cannot make a key pair: {e}"))?;
        let private: [u8; 32] =
            pair.private.as_slice().try_into().map_err(|_| {
                format!("snow made a {}-byte X25519 private key", pair.private.len())
            })?;
        let identity = Identity::from_private(private);
        if identity.public.as_slice() != pair.public.as_slice() {
            return Err("snow's public key does not match its private key".to_string());
        }
        Ok(identity)
    }

    /// The key pair of an X25519 private key: the public key is computed from it.
    pub fn from_private(private: [u8; 32]) -> Identity {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("snow's default resolver has X25519 (feature use-curve25519, on by default)");
        dh.set(&private);
        let public = dh
            .pubkey()
            .try_into()
            .expect("an X25519 public key has 32 bytes");
        Identity { private, public }
    }

    pub fn private_key(&self) -> &[u8; 32] {
        &self.private
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    pub fn peer_id(&self) -> PeerId {
        PeerId::from_public_key(self.public)
    }
}

/// Never the private key, so that a `{:?}` in a log cannot leak it.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7748 §6.1: Alice's private key gives her public key.
    #[test]
    fn public_key_follows_rfc_7748() {
        let private =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap();
        let id = Identity::from_private(private.try_into().unwrap());
        assert_eq!(
            hex::encode(id.public_key()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn generated_keys_differ_and_are_consistent() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.public_key(), b.public_key());
        assert_eq!(
            Identity::from_private(*a.private_key()).public_key(),
            a.public_key()
        );
        assert!(!format!("{a:?}").contains(&hex::encode(a.private_key())));
    }
}
