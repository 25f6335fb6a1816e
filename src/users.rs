//! Users and groups of this host, from the C library (so NSS sources such
//! as LDAP count too): names for the audit log, and group membership for
//! the service socket.

use std::ffi::{CStr, CString};

/// The login name of `uid`, or `uid N` when it has none.
pub fn name_of(uid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: buf outlives the call and `out` points into pwd or is null.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: pw_name is a NUL-terminated string inside buf.
    unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned()
}

/// The id of the group named `name`.
pub fn group_id(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in name_of.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    (rc == 0 && !out.is_null()).then_some(grp.gr_gid)
}

/// Every group `uid` belongs to: its primary group and the supplementary
/// ones the group database lists.
pub fn groups_of(uid: u32, primary: u32) -> Vec<u32> {
    let name = name_of(uid);
    let Ok(cname) = CString::new(name) else {
        return vec![primary];
    };
    let mut count: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; count as usize];
        let before = count;
        // SAFETY: groups has `count` entries; getgrouplist updates count.
        let rc =
            unsafe { libc::getgrouplist(cname.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return groups;
        }
        if count <= before {
            count = before * 2;
        }
        if count > 65_536 {
            return vec![primary];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_and_in_its_group() {
        assert_eq!(name_of(0), "root");
        assert_eq!(group_id("root"), Some(0));
        assert!(groups_of(0, 0).contains(&0));
        assert_eq!(group_id("no-such-group-petitlab"), None);
        assert_eq!(name_of(4_000_000_000), "uid 4000000000");
    }
}
