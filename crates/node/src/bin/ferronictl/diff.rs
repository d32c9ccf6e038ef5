//! The unified diff `edit-config` shows before asking, in the layout of Python's
//! `difflib.unified_diff` that patronictl prints: `--- `/`+++ ` headers, `@@ -a,b +c,d @@` hunks with
//! three lines of context. Configurations are short, so a plain longest-common-subsequence table is
//! fast enough and gives a minimal diff.

const CONTEXT: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Same,
    Removed,
    Added,
}

/// The diff of two texts line by line, or an empty list when they are equal.
pub fn unified(before: &str, after: &str) -> Vec<String> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let script = edit_script(&a, &b);
    if script.iter().all(|(op, _, _)| *op == Op::Same) {
        return Vec::new();
    }
    let mut out = vec!["--- ".to_string(), "+++ ".to_string()];
    for (start, end) in hunks(&script) {
        let slice = &script[start..end];
        let (a_start, b_start) = (slice[0].1, slice[0].2);
        let a_len = slice.iter().filter(|(op, _, _)| *op != Op::Added).count();
        let b_len = slice.iter().filter(|(op, _, _)| *op != Op::Removed).count();
        out.push(format!("@@ -{} +{} @@", range(a_start, a_len), range(b_start, b_len)));
        for (op, i, j) in slice {
            out.push(match op {
                Op::Same => format!(" {}", a[*i]),
                Op::Removed => format!("-{}", a[*i]),
                Op::Added => format!("+{}", b[*j]),
            });
        }
    }
    out
}

/// difflib's `_format_range_unified`: 1-based start, length omitted when 1, and an empty range
/// named by the line before it.
fn range(start: usize, len: usize) -> String {
    match len {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        _ => format!("{},{len}", start + 1),
    }
}

/// `(op, index in a, index in b)` for every line; for an added line the index in `a` is where it
/// goes, and the other way round.
fn edit_script(a: &[&str], b: &[&str]) -> Vec<(Op, usize, usize)> {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut script = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            script.push((Op::Same, i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            script.push((Op::Removed, i, j));
            i += 1;
        } else {
            script.push((Op::Added, i, j));
            j += 1;
        }
    }
    script
}

/// Ranges of the script to show: every change with up to three unchanged lines around it, merging
/// changes whose context would touch.
fn hunks(script: &[(Op, usize, usize)]) -> Vec<(usize, usize)> {
    let changed: Vec<usize> = (0..script.len()).filter(|&k| script[k].0 != Op::Same).collect();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for k in changed {
        let start = k.saturating_sub(CONTEXT);
        let end = (k + 1 + CONTEXT).min(script.len());
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => out.push((start, end)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert!(unified("a\nb\n", "a\nb\n").is_empty());
    }

    #[test]
    fn difflib_layout() {
        let before = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let after = "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\n";
        assert_eq!(
            unified(before, after),
            vec![
                "--- ",
                "+++ ",
                "@@ -1,5 +1,5 @@",
                " a",
                "-b",
                "+B",
                " c",
                " d",
                " e",
                "@@ -8,3 +8,4 @@",
                " h",
                " i",
                " j",
                "+k",
            ]
        );
    }

    #[test]
    fn changes_close_together_share_a_hunk() {
        let d = unified("ttl: 30\nloop_wait: 10\n", "ttl: 20\nloop_wait: 5\n");
        assert_eq!(
            d,
            vec![
                "--- ",
                "+++ ",
                "@@ -1,2 +1,2 @@",
                "-ttl: 30",
                "-loop_wait: 10",
                "+ttl: 20",
                "+loop_wait: 5"
            ]
        );
    }

    #[test]
    fn empty_sides() {
        assert_eq!(unified("", "x\n"), vec!["--- ", "+++ ", "@@ -0,0 +1 @@", "+x"]);
        assert_eq!(unified("x\n", ""), vec!["--- ", "+++ ", "@@ -1 +0,0 @@", "-x"]);
    }
}
