//! The deploy record of a node being deployed: what its agent (or iSCSI
//! ramdisk) reported, read by the deploy driver. At most one per node.

use rusqlite::params;

use super::schema::{DEPLOY_SELECT, deploy_from_row};
use super::{
    AgentResult, Deploy, IscsiTarget, NewDeploy, Res, Store, now_ms, query_all, query_opt,
    read_node, to_db,
};

impl Store {
    /// Replaces any previous deploy record of the node (written/total 0, no
    /// result, started_at now). UnknownNode if the node is absent.
    pub fn begin_deploy(&mut self, d: &NewDeploy) -> Res<()> {
        self.write(|tx| {
            read_node(tx, &d.node)?;
            tx.execute("DELETE FROM deploys WHERE node = ?1", [&d.node])?;
            let sql = "INSERT INTO deploys (node, token_sha256, image_url, image_size, \
                 image_sha256, image_name, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
            let (size, now) = (to_db(d.image_size), now_ms());
            let (url, sha, name) = (&d.image_url, &d.image_sha256, &d.image_name);
            tx.execute(
                sql,
                params![d.node, d.token_sha256, url, size, sha, name, now],
            )?;
            Ok(())
        })
    }

    pub fn deploy(&self, node: &str) -> Res<Option<Deploy>> {
        let sql = format!("{DEPLOY_SELECT} WHERE node = ?1");
        self.read(|c| query_opt(c, &sql, &[&node], deploy_from_row))
    }

    /// Every deploy record (one per node being deployed).
    pub fn deploys(&self) -> Res<Vec<Deploy>> {
        let sql = format!("{DEPLOY_SELECT} ORDER BY node");
        self.read(|c| query_all(c, &sql, &[], deploy_from_row))
    }

    /// Sets looked_up_at (if unset) and agent_seen_at = now. False without a deploy record.
    pub fn agent_lookup(&mut self, node: &str) -> Res<bool> {
        let sql = "UPDATE deploys SET looked_up_at = COALESCE(looked_up_at, ?2), \
                   agent_seen_at = ?2 WHERE node = ?1";
        Ok(self.exec(sql, params![node, now_ms()])? > 0)
    }

    /// agent_seen_at = now. False without a deploy record.
    pub fn agent_heartbeat(&mut self, node: &str) -> Res<bool> {
        let sql = "UPDATE deploys SET agent_seen_at = ?2 WHERE node = ?1";
        Ok(self.exec(sql, params![node, now_ms()])? > 0)
    }

    /// Image bytes written so far, and agent_seen_at = now. False without a deploy record.
    pub fn agent_progress(&mut self, node: &str, written: u64, total: u64) -> Res<bool> {
        let sql = "UPDATE deploys SET written = ?2, total = ?3, agent_seen_at = ?4 WHERE node = ?1";
        let p = params![node, to_db(written), to_db(total), now_ms()];
        Ok(self.exec(sql, p)? > 0)
    }

    /// Stores the result only if none yet; false if there is no record or it already had one.
    pub fn agent_result(&mut self, node: &str, result: &AgentResult) -> Res<bool> {
        let (kind, detail) = match result {
            AgentResult::Done { sha256 } => ("done", sha256),
            AgentResult::Failed { reason } => ("failed", reason),
        };
        let sql = "UPDATE deploys SET result_kind = ?2, result_detail = ?3, agent_seen_at = ?4 \
                   WHERE node = ?1 AND result_kind IS NULL";
        Ok(self.exec(sql, params![node, kind, detail, now_ms()])? > 0)
    }

    /// The target an iSCSI deploy ramdisk exports; counts as a heartbeat.
    /// False without a deploy record.
    pub fn iscsi_target(&mut self, node: &str, t: &IscsiTarget) -> Res<bool> {
        let sql = "UPDATE deploys SET iscsi_target = ?2, iscsi_portal = ?3, iscsi_lun = ?4, \
                   agent_seen_at = ?5 WHERE node = ?1";
        let p = params![node, t.target, t.portal, to_db(t.lun), now_ms()];
        Ok(self.exec(sql, p)? > 0)
    }

    /// petitlab wrote the image over iSCSI and read back `sha256`.
    /// False without a deploy record.
    pub fn iscsi_written(&mut self, node: &str, sha256: &str) -> Res<bool> {
        let sql = "UPDATE deploys SET iscsi_written_sha256 = ?2 WHERE node = ?1";
        Ok(self.exec(sql, params![node, sha256])? > 0)
    }

    /// Deletes the node's deploy record: its token stops working.
    pub fn end_deploy(&mut self, node: &str) -> Res<()> {
        self.exec("DELETE FROM deploys WHERE node = ?1", &[&node])?;
        Ok(())
    }
}
