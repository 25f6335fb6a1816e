//! A small line diff (longest common subsequence) for the config preview:
//! what is on disk against what the engine would write now. Configs are
//! tens of lines, so the quadratic table is cheap; beyond a size bound the
//! middle is reported as removed-then-added instead.

/// One line of a diff from `old` (on disk) to `new` (would be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffLine<'a> {
    Same(&'a str),
    /// Only in `old`.
    Removed(&'a str),
    /// Only in `new`.
    Added(&'a str),
}

/// Above this many table cells (old lines × new lines) the common prefix and
/// suffix are still found, but the middle is not aligned line by line.
const MAX_CELLS: usize = 1 << 20;

/// The lines of `old` and `new` in order, each marked same, removed or added.
pub fn diff_lines<'a>(old: &'a str, new: &'a str) -> Vec<DiffLine<'a>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mid_a, mid_b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut out: Vec<DiffLine<'a>> = a[..prefix].iter().map(|l| DiffLine::Same(l)).collect();
    out.extend(middle(mid_a, mid_b));
    out.extend(a[a.len() - suffix..].iter().map(|l| DiffLine::Same(l)));
    out
}

fn middle<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<DiffLine<'a>> {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 || n.saturating_mul(m) > MAX_CELLS {
        let mut out: Vec<DiffLine<'a>> = a.iter().map(|l| DiffLine::Removed(l)).collect();
        out.extend(b.iter().map(|l| DiffLine::Added(l)));
        return out;
    }
    // lcs[i][j]: length of the LCS of a[i..] and b[j..], row-major.
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * w + j] = if a[i] == b[j] {
                lcs[(i + 1) * w + j + 1] + 1
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n + m);
    while i < n && j < m {
        if a[i] == b[j] {
            out.push(DiffLine::Same(a[i]));
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * w + j] >= lcs[i * w + j + 1] {
            out.push(DiffLine::Removed(a[i]));
            i += 1;
        } else {
            out.push(DiffLine::Added(b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| DiffLine::Removed(l)));
    out.extend(b[j..].iter().map(|l| DiffLine::Added(l)));
    out
}

/// True when the diff has any change.
pub fn differs(diff: &[DiffLine<'_>]) -> bool {
    diff.iter().any(|d| !matches!(d, DiffLine::Same(_)))
}

/// A diff laid out in two columns, old (left) beside new (right): a run of
/// removed lines is paired with the run of added lines that follows it.
pub fn side_by_side<'a>(
    diff: &[DiffLine<'a>],
) -> Vec<(Option<DiffLine<'a>>, Option<DiffLine<'a>>)> {
    let mut rows = Vec::with_capacity(diff.len());
    let mut k = 0;
    while k < diff.len() {
        match diff[k] {
            DiffLine::Same(_) => {
                rows.push((Some(diff[k]), Some(diff[k])));
                k += 1;
            }
            _ => {
                let removed_end = k + diff[k..]
                    .iter()
                    .take_while(|d| matches!(d, DiffLine::Removed(_)))
                    .count();
                let added_end = removed_end
                    + diff[removed_end..]
                        .iter()
                        .take_while(|d| matches!(d, DiffLine::Added(_)))
                        .count();
                let (removed, added) = (&diff[k..removed_end], &diff[removed_end..added_end]);
                for r in 0..removed.len().max(added.len()) {
                    rows.push((removed.get(r).copied(), added.get(r).copied()));
                }
                k = added_end;
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::DiffLine::{Added, Removed, Same};
    use super::*;

    #[test]
    fn equal_texts_are_all_same() {
        let d = diff_lines("a\nb\n", "a\nb\n");
        assert_eq!(d, vec![Same("a"), Same("b")]);
        assert!(!differs(&d));
    }

    #[test]
    fn changed_line_is_removed_then_added() {
        let d = diff_lines(
            "default x\nlabel x\nkernel old\nappend q\n",
            "default x\nlabel x\nkernel new\nappend q\n",
        );
        assert_eq!(
            d,
            vec![
                Same("default x"),
                Same("label x"),
                Removed("kernel old"),
                Added("kernel new"),
                Same("append q")
            ]
        );
        assert!(differs(&d));
    }

    #[test]
    fn insertions_deletions_and_reorders_keep_the_longest_common_part() {
        let d = diff_lines("a\nb\nc\nd\n", "b\nc\nx\nd\ne\n");
        assert_eq!(
            d,
            vec![
                Removed("a"),
                Same("b"),
                Same("c"),
                Added("x"),
                Same("d"),
                Added("e")
            ]
        );
        let d = diff_lines("", "a\n");
        assert_eq!(d, vec![Added("a")]);
        let d = diff_lines("a\n", "");
        assert_eq!(d, vec![Removed("a")]);
        let d = diff_lines("x\ny\n", "y\nx\n");
        assert_eq!(d.iter().filter(|l| matches!(l, Same(_))).count(), 1);
    }

    #[test]
    fn side_by_side_pairs_changes() {
        let d = diff_lines("a\nold1\nold2\nz\n", "a\nnew1\nz\nq\n");
        let rows = side_by_side(&d);
        assert_eq!(
            rows,
            vec![
                (Some(Same("a")), Some(Same("a"))),
                (Some(Removed("old1")), Some(Added("new1"))),
                (Some(Removed("old2")), None),
                (Some(Same("z")), Some(Same("z"))),
                (None, Some(Added("q"))),
            ]
        );
    }

    #[test]
    fn huge_inputs_do_not_build_a_huge_table() {
        let old: String = (0..3000).map(|i| format!("o{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("n{i}\n")).collect();
        let d = diff_lines(&old, &new);
        assert_eq!(d.len(), 6000);
    }
}
