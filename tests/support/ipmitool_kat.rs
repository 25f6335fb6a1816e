//! Checks petitlab's RAKP and key derivation against ipmitool's own: with
//! `-vvvv`, ipmitool prints the RAKP 2 input buffer (both session IDs, both
//! random numbers, the GUID, role and user name) and every value it derives.

use petitlab::ipmi::CipherSuite;
use petitlab::ipmi::crypto::Exchange;

/// The hex dump printed after the first line starting with `header`.
fn block(log: &str, header: &str) -> Vec<u8> {
    let mut lines = log.lines().skip_while(|l| !l.starts_with(header));
    assert!(
        lines.next().is_some(),
        "ipmitool -vvvv printed no {header:?}:\n{log}"
    );
    lines
        .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
        .flat_map(|l| l.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex {b:?}")))
        .collect()
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

/// Recomputes every RAKP value from ipmitool's printed inputs and asserts
/// it equals what ipmitool printed. Returns how many values were compared.
pub fn assert_same_derivation(log: &str, suite: CipherSuite, password: &str) -> usize {
    let input = block(log, ">> rakp2 mac input buffer");
    assert!(input.len() >= 58, "short RAKP 2 input: {input:02x?}");
    let ulen = input[57] as usize;
    let x = Exchange {
        suite,
        console_session_id: u32_le(&input[0..4]),
        bmc_session_id: u32_le(&input[4..8]),
        console_random: input[8..24].try_into().unwrap(),
        bmc_random: input[24..40].try_into().unwrap(),
        bmc_guid: input[40..56].try_into().unwrap(),
        role: input[56],
        username: input[58..58 + ulen].to_vec(),
    };
    let pw = password.as_bytes();
    let keys = x.keys(pw);
    let checks: [(&str, Vec<u8>); 6] = [
        (
            ">> rakp2 mac as computed by the remote console",
            x.rakp2_auth_code(pw),
        ),
        ("generated rakp3 mac", x.rakp3_auth_code(pw)),
        ("Generated session integrity key", keys.sik.clone()),
        ("Generated K1", keys.k1.clone()),
        ("Generated K2", keys.k2.clone()),
        (
            ">> rakp4 mac as computed by the remote console",
            x.rakp4_icv(&keys.sik),
        ),
    ];
    for (header, ours) in &checks {
        let theirs = block(log, header);
        // ipmitool prints RAKP 4 untruncated; the ICV is its prefix.
        let theirs = &theirs[..ours.len().min(theirs.len())];
        assert_eq!(ours.as_slice(), theirs, "{header} differs from ipmitool's");
    }
    checks.len()
}
