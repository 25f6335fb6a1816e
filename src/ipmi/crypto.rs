//! RMCP+ cipher suites 3 and 17: RAKP HMACs, session key derivation (SIK, K1,
//! K2), the integrity AuthCode and AES-CBC-128 confidentiality (IPMI 2.0
//! §13.28–13.32). Pure functions, shared by the client and the simulator.

use aes::Aes128;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
use hmac::{Hmac, KeyInit, Mac};

/// The cipher suites petitlab speaks. Both use AES-CBC-128 for confidentiality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum CipherSuite {
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128: older BMCs and ipmi_sim.
    Suite3,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128: OpenBMC.
    Suite17,
}

/// Algorithm numbers as carried in Open Session payloads.
pub const AUTH_HMAC_SHA1: u8 = 0x01;
pub const AUTH_HMAC_SHA256: u8 = 0x03;
pub const INTEGRITY_HMAC_SHA1_96: u8 = 0x01;
pub const INTEGRITY_HMAC_SHA256_128: u8 = 0x04;
pub const CONFIDENTIALITY_AES_CBC_128: u8 = 0x01;

const AES_BLOCK: usize = 16;

impl CipherSuite {
    pub fn id(self) -> u8 {
        match self {
            CipherSuite::Suite3 => 3,
            CipherSuite::Suite17 => 17,
        }
    }

    pub fn from_id(id: u8) -> Option<CipherSuite> {
        match id {
            3 => Some(CipherSuite::Suite3),
            17 => Some(CipherSuite::Suite17),
            _ => None,
        }
    }

    /// The suite whose three algorithm numbers these are, if it is one of ours.
    pub fn from_algorithms(auth: u8, integrity: u8, confidentiality: u8) -> Option<CipherSuite> {
        [CipherSuite::Suite17, CipherSuite::Suite3]
            .into_iter()
            .find(|s| s.algorithms() == (auth, integrity, confidentiality))
    }

    /// (authentication, integrity, confidentiality) algorithm numbers.
    pub fn algorithms(self) -> (u8, u8, u8) {
        match self {
            CipherSuite::Suite3 => (
                AUTH_HMAC_SHA1,
                INTEGRITY_HMAC_SHA1_96,
                CONFIDENTIALITY_AES_CBC_128,
            ),
            CipherSuite::Suite17 => (
                AUTH_HMAC_SHA256,
                INTEGRITY_HMAC_SHA256_128,
                CONFIDENTIALITY_AES_CBC_128,
            ),
        }
    }

    /// Length of the RAKP 2/3 key exchange auth codes and of SIK/K1/K2.
    pub fn hmac_len(self) -> usize {
        match self {
            CipherSuite::Suite3 => 20,
            CipherSuite::Suite17 => 32,
        }
    }

    /// Length of the truncated AuthCode on session packets and of RAKP 4's
    /// integrity check value.
    pub fn integrity_len(self) -> usize {
        match self {
            CipherSuite::Suite3 => 12,
            CipherSuite::Suite17 => 16,
        }
    }

    /// HMAC with this suite's hash (SHA1 or SHA256), full length.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            CipherSuite::Suite3 => hmac_with::<Hmac<sha1::Sha1>>(key, parts),
            CipherSuite::Suite17 => hmac_with::<Hmac<sha2::Sha256>>(key, parts),
        }
    }
}

fn hmac_with<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time comparison, so a forged auth code leaks nothing by timing.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Inputs of the RAKP exchange that both sides know after RAKP 2.
#[derive(Clone)]
pub struct Exchange {
    pub suite: CipherSuite,
    /// The remote console's session ID (SIDm).
    pub console_session_id: u32,
    /// The BMC's session ID (SIDc).
    pub bmc_session_id: u32,
    /// Rm: the console's random number (RAKP 1).
    pub console_random: [u8; 16],
    /// Rc: the BMC's random number (RAKP 2).
    pub bmc_random: [u8; 16],
    /// GUIDc: the BMC's GUID (RAKP 2).
    pub bmc_guid: [u8; 16],
    /// The role byte as sent in RAKP 1, including the name-only-lookup bit.
    pub role: u8,
    pub username: Vec<u8>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("suite", &self.suite)
            .field("console_session_id", &self.console_session_id)
            .field("bmc_session_id", &self.bmc_session_id)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    fn user_fields(&self) -> [u8; 2] {
        [self.role, self.username.len() as u8]
    }

    /// RAKP 2 key exchange auth code, keyed by the user's password (Kuid):
    /// HMAC(SIDm | SIDc | Rm | Rc | GUIDc | ROLEm | ULENGTHm | UNAMEm).
    pub fn rakp2_auth_code(&self, password: &[u8]) -> Vec<u8> {
        self.suite.hmac(
            password,
            &[
                &self.console_session_id.to_le_bytes(),
                &self.bmc_session_id.to_le_bytes(),
                &self.console_random,
                &self.bmc_random,
                &self.bmc_guid,
                &self.user_fields(),
                &self.username,
            ],
        )
    }

    /// RAKP 3 key exchange auth code: HMAC(Kuid, Rc | SIDm | ROLEm | ULENGTHm | UNAMEm).
    pub fn rakp3_auth_code(&self, password: &[u8]) -> Vec<u8> {
        self.suite.hmac(
            password,
            &[
                &self.bmc_random,
                &self.console_session_id.to_le_bytes(),
                &self.user_fields(),
                &self.username,
            ],
        )
    }

    /// Session integrity key: HMAC(Kg, Rm | Rc | ROLEm | ULENGTHm | UNAMEm).
    /// Without a BMC key (Kg), the user password is used, as every BMC here does.
    pub fn sik(&self, password: &[u8]) -> Vec<u8> {
        self.suite.hmac(
            password,
            &[
                &self.console_random,
                &self.bmc_random,
                &self.user_fields(),
                &self.username,
            ],
        )
    }

    /// RAKP 4 integrity check value: HMAC(SIK, Rm | SIDc | GUIDc), truncated.
    pub fn rakp4_icv(&self, sik: &[u8]) -> Vec<u8> {
        let mut full = self.suite.hmac(
            sik,
            &[
                &self.console_random,
                &self.bmc_session_id.to_le_bytes(),
                &self.bmc_guid,
            ],
        );
        full.truncate(self.suite.integrity_len());
        full
    }

    pub fn keys(&self, password: &[u8]) -> SessionKeys {
        SessionKeys::derive(self.suite, &self.sik(password))
    }
}

/// The keys of an established session.
#[derive(Clone)]
pub struct SessionKeys {
    pub suite: CipherSuite,
    pub sik: Vec<u8>,
    /// Integrity key: HMAC(SIK, 0x01 × 20).
    pub k1: Vec<u8>,
    /// Confidentiality key: HMAC(SIK, 0x02 × 20); AES uses its first 16 bytes.
    pub k2: Vec<u8>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKeys({:?}, <redacted>)", self.suite)
    }
}

impl SessionKeys {
    pub fn derive(suite: CipherSuite, sik: &[u8]) -> SessionKeys {
        // The constants are 20 bytes for both hashes: that is what ipmitool,
        // OpenBMC's netipmid and the IPMI 2.0 errata use.
        SessionKeys {
            suite,
            sik: sik.to_vec(),
            k1: suite.hmac(sik, &[&[0x01; 20]]),
            k2: suite.hmac(sik, &[&[0x02; 20]]),
        }
    }

    /// Truncated AuthCode over `data` (AuthType byte through Next Header).
    pub fn auth_code(&self, data: &[u8]) -> Vec<u8> {
        let mut code = self.suite.hmac(&self.k1, &[data]);
        code.truncate(self.suite.integrity_len());
        code
    }

    fn aes_key(&self) -> [u8; 16] {
        self.k2[..16].try_into().expect("K2 is at least 16 bytes")
    }

    /// AES-CBC-128 payload: IV, then the plaintext with IPMI's confidentiality
    /// trailer (pad bytes 1, 2, 3… and the pad length) encrypted.
    pub fn encrypt(&self, plain: &[u8], iv: [u8; 16]) -> Vec<u8> {
        let pad = (AES_BLOCK - (plain.len() + 1) % AES_BLOCK) % AES_BLOCK;
        let mut buf = Vec::with_capacity(AES_BLOCK + plain.len() + pad + 1);
        buf.extend_from_slice(plain);
        buf.extend((1..=pad as u8).collect::<Vec<_>>());
        buf.push(pad as u8);
        let len = buf.len();
        cbc::Encryptor::<Aes128>::new(&self.aes_key().into(), &iv.into())
            .encrypt_padded::<NoPadding>(&mut buf, len)
            .expect("buffer is a whole number of blocks");
        let mut out = iv.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Inverse of [`encrypt`](Self::encrypt); `None` if the payload is not a
    /// well-formed AES-CBC-128 payload (bad length or pad).
    pub fn decrypt(&self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < 2 * AES_BLOCK || !payload.len().is_multiple_of(AES_BLOCK) {
            return None;
        }
        let (iv, data) = payload.split_at(AES_BLOCK);
        let iv: [u8; 16] = iv.try_into().ok()?;
        let mut buf = data.to_vec();
        cbc::Decryptor::<Aes128>::new(&self.aes_key().into(), &iv.into())
            .decrypt_padded::<NoPadding>(&mut buf)
            .ok()?;
        let pad = *buf.last()? as usize;
        if pad >= AES_BLOCK || pad + 1 > buf.len() {
            return None;
        }
        // The pad bytes should be 1, 2, 3…; they are not checked because the
        // AuthCode already covers them and some BMCs pad differently.
        buf.truncate(buf.len() - pad - 1);
        Some(buf)
    }
}

/// Fresh random bytes for RAKP random numbers, session IDs and IVs.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::fill(&mut out[..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_round_trips_every_length_and_pads_like_ipmi() {
        let keys = SessionKeys::derive(CipherSuite::Suite17, &[7; 32]);
        for len in 0..40 {
            let plain: Vec<u8> = (0..len as u8).collect();
            let enc = keys.encrypt(&plain, [9; 16]);
            assert_eq!(enc.len() % 16, 0);
            assert_eq!(keys.decrypt(&enc).as_deref(), Some(&plain[..]), "len {len}");
        }
        assert_eq!(keys.decrypt(&[0; 17]), None);
    }

    #[test]
    fn suites_know_their_algorithms() {
        assert_eq!(
            CipherSuite::from_algorithms(3, 4, 1),
            Some(CipherSuite::Suite17)
        );
        assert_eq!(
            CipherSuite::from_algorithms(1, 1, 1),
            Some(CipherSuite::Suite3)
        );
        assert_eq!(CipherSuite::from_algorithms(1, 1, 0), None);
    }
}
