//! Who is on the other end of the socket (SO_PEERCRED, which the kernel
//! fills in: a client cannot lie about it) and whether they may use the
//! service: root, the service's own user, or a member of `[service] group`.

use crate::users;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub user: String,
}

impl Peer {
    pub fn of(stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
            user: users::name_of(cred.uid()),
        })
    }

    /// How the audit log names the peer.
    pub fn who(&self) -> String {
        match self.pid {
            Some(pid) => format!("{} (pid {pid})", self.user),
            None => self.user.clone(),
        }
    }
}

/// Who may use the service.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The service's own user.
    pub owner: u32,
    /// `[service] group`: its name and id.
    pub group: Option<(String, u32)>,
}

impl Admission {
    pub fn current(group: Option<&str>) -> Result<Admission, String> {
        let group = match group {
            None => None,
            Some(name) => match users::group_id(name) {
                Some(gid) => Some((name.to_string(), gid)),
                None => {
                    return Err(format!(
                        "service.group: no group named {name:?} on this host"
                    ));
                }
            },
        };
        // SAFETY: geteuid cannot fail.
        let owner = unsafe { libc::geteuid() };
        Ok(Admission { owner, group })
    }

    /// `Err` says why the peer is refused, naming the user and the fix.
    pub fn admit(&self, peer: &Peer) -> Result<(), String> {
        if peer.uid == 0 || peer.uid == self.owner {
            return Ok(());
        }
        if let Some((name, gid)) = &self.group {
            if peer.gid == *gid
                || peer
                    .pid
                    .is_some_and(|pid| process_groups(pid).contains(gid))
                || users::groups_of(peer.uid, peer.gid).contains(gid)
            {
                return Ok(());
            }
            return Err(format!(
                "user {} is not in group {name}, which the lab service admits; ask an admin to \
                 add them (usermod -aG {name} {})",
                peer.user, peer.user
            ));
        }
        Err(format!(
            "user {} may not use this lab service: it admits only {} and root, as lab.toml \
             sets no [service] group",
            peer.user,
            users::name_of(self.owner)
        ))
    }
}

/// The supplementary groups the process runs with (what the kernel checks
/// file access against), from /proc; empty if it cannot be read.
fn process_groups(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer {
            uid,
            gid,
            pid: Some(1),
            user: users::name_of(uid),
        }
    }

    #[test]
    fn root_and_the_owner_are_admitted_others_only_through_the_group() {
        let alone = Admission {
            owner: 4242,
            group: None,
        };
        assert!(alone.admit(&peer(0, 0)).is_ok());
        assert!(alone.admit(&peer(4242, 4242)).is_ok());
        let refused = alone.admit(&peer(65534, 65534)).unwrap_err();
        assert!(refused.contains("user nobody may not use"), "{refused}");
        let grouped = Admission {
            owner: 4242,
            group: Some(("lab".into(), 777)),
        };
        assert!(grouped.admit(&peer(65534, 777)).is_ok(), "primary group");
        let refused = grouped.admit(&peer(65534, 65534)).unwrap_err();
        assert!(refused.contains("not in group lab"), "{refused}");
    }
}
