//! Printing tables the way patronictl's `print_output` does, in its four formats:
//!
//! * `pretty`: a bordered ASCII table (prettytable's look: `+---+` everywhere, a title such as
//!   ` Cluster: batman (7268616322854375442) ` laid into the top border, lines between rows only when
//!   a cell spans several lines);
//! * `tsv`: tab-separated with a header line;
//! * `json`: one line, a list of objects in column order, with Python's `json.dumps` spacing;
//! * `yaml`: the same list as block YAML with sorted keys.
//!
//! For member lists (first column `Cluster`) the pretty table leaves the cluster column out, since
//! the title names the cluster, and tags are shown as YAML. With a title, empty cells are left out
//! of json and yaml objects, so a leader has no `Lag in MB` key.

use crate::args::Format;
use crate::yaml_out;
use comfy_table::{CellAlignment, ContentLineStyle, LineStyle, Table as Comfy, TableStyle};
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::io::Write as _;

/// Writes to stdout. A closed pipe (`ferronictl list | head -3`) ends the program quietly instead
/// of panicking as `print!` would; other write errors are reported and end it with exit code 1.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("Error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// prettytable's default look with `hrules=FRAME`.
const FRAME: TableStyle = TableStyle::new()
    .top_border(LineStyle::new('+', '-', '+', '+'))
    .header_lines(ContentLineStyle::new('|', '|', '|'))
    .header_separator(LineStyle::new('+', '-', '+', '+'))
    .content_lines(ContentLineStyle::new('|', '|', '|'))
    .bottom_border(LineStyle::new('+', '-', '+', '+'));
/// `hrules=ALL`: also a line between rows, used when a cell spans several lines.
const ALL: TableStyle = FRAME.row_separator(LineStyle::new('+', '-', '+', '+'));

/// Rows of typed cells: strings, numbers, or (for tags) a JSON object. An empty string is an
/// empty cell.
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
    /// Columns aligned to the right (numbers).
    pub right: Vec<&'static str>,
    /// Laid into the top border of the pretty table; also marks member lists for json/yaml.
    pub title: Option<String>,
}

impl Table {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let mut out = String::from("[");
                for (i, row) in self.objects().iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push('{');
                    for (k, (key, value)) in row.iter().enumerate() {
                        if k > 0 {
                            out.push_str(", ");
                        }
                        let _ = write!(out, "{}: {}", py_json(&Value::String(key.to_string())), py_json(value));
                    }
                    out.push('}');
                }
                out.push_str("]\n");
                out
            }
            Format::Yaml => {
                let list: Vec<Value> = self
                    .objects()
                    .into_iter()
                    .map(|row| Value::Object(row.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>()))
                    .collect();
                yaml_out::to_yaml(&Value::Array(list))
            }
            Format::Tsv => {
                let mut out = self.columns.join("\t");
                out.push('\n');
                for row in &self.rows {
                    let cells: Vec<String> = row.iter().map(|v| cell_text(v, true)).collect();
                    out.push_str(&cells.join("\t"));
                    out.push('\n');
                }
                out
            }
            Format::Pretty => self.pretty(),
        }
    }

    /// Rows as (column, value) pairs in column order, without empty cells when the table has a title.
    fn objects(&self) -> Vec<Vec<(&'static str, Value)>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| self.title.is_none() || !is_empty(v))
                    .map(|(c, v)| (*c, v.clone()))
                    .collect()
            })
            .collect()
    }

    fn pretty(&self) -> String {
        let skip = usize::from(self.title.is_some() && self.columns.first() == Some(&"Cluster"));
        let columns = &self.columns[skip..];
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().skip(skip).map(|v| cell_text(v, false)).collect())
            .collect();
        let multiline = rows.iter().flatten().any(|c| c.contains('\n'));

        let mut table = Comfy::new();
        table.load_style(if multiline { ALL } else { FRAME });
        table.set_header(columns.to_vec());
        for row in &rows {
            table.add_row(row.clone());
        }
        for (i, name) in columns.iter().enumerate() {
            if self.right.contains(name)
                && let Some(column) = table.column_mut(i)
            {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut lines: Vec<String> = table.lines().collect();
        if let (Some(title), Some(top)) = (&self.title, lines.first_mut()) {
            *top = with_title(top, title);
        }
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
}

/// prettytable as patched by patronictl: the title replaces the border right after the first
/// corner, cut to fit.
fn with_title(border: &str, title: &str) -> String {
    let chars: Vec<char> = border.chars().collect();
    if chars.len() < 2 {
        return border.to_string();
    }
    let title: String = title.chars().take(chars.len() - 2).collect();
    let n = title.chars().count();
    let mut out = String::new();
    out.push(chars[0]);
    out.push_str(&title);
    out.extend(&chars[1 + n..]);
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A cell as text: tags as block YAML in the pretty table and as flow YAML in tsv, as patronictl does.
fn cell_text(v: &Value, flow: bool) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(m) if m.is_empty() => String::new(),
        Value::Object(_) | Value::Array(_) if flow => yaml_out::flow(v),
        Value::Object(_) | Value::Array(_) => yaml_out::to_yaml(v).trim().to_string(),
        other => other.to_string(),
    }
}

/// JSON as Python's `json.dumps` writes it: `", "` and `": "` separators and non-ASCII escaped.
pub fn py_json(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            for c in Value::String(s.clone()).to_string().chars() {
                if c.is_ascii() {
                    out.push(c);
                } else {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
            }
            out
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py_json).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_json(&Value::String(k.clone())), py_json(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn members() -> Table {
        Table {
            columns: vec!["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"],
            rows: vec![
                vec![
                    json!("batman"),
                    json!("pg1"),
                    json!("127.0.0.1:5432"),
                    json!("Leader"),
                    json!("running"),
                    json!(1),
                    json!(""),
                ],
                vec![
                    json!("batman"),
                    json!("pg2"),
                    json!("127.0.0.1:5433"),
                    json!("Replica"),
                    json!("streaming"),
                    json!(1),
                    json!(0),
                ],
            ],
            right: vec!["TL", "Lag in MB"],
            title: Some(" Cluster: batman (7268616322854375442) ".to_string()),
        }
    }

    #[test]
    fn pretty_looks_like_patronictl() {
        let expected = "\
+ Cluster: batman (7268616322854375442) --------+----+-----------+
| Member | Host           | Role    | State     | TL | Lag in MB |
+--------+----------------+---------+-----------+----+-----------+
| pg1    | 127.0.0.1:5432 | Leader  | running   |  1 |           |
| pg2    | 127.0.0.1:5433 | Replica | streaming |  1 |         0 |
+--------+----------------+---------+-----------+----+-----------+
";
        assert_eq!(members().render(Format::Pretty), expected);
    }

    #[test]
    fn machine_formats() {
        let t = members();
        assert_eq!(
            t.render(Format::Json),
            "[{\"Cluster\": \"batman\", \"Member\": \"pg1\", \"Host\": \"127.0.0.1:5432\", \"Role\": \"Leader\", \"State\": \"running\", \"TL\": 1}, \
             {\"Cluster\": \"batman\", \"Member\": \"pg2\", \"Host\": \"127.0.0.1:5433\", \"Role\": \"Replica\", \"State\": \"streaming\", \"TL\": 1, \"Lag in MB\": 0}]\n"
        );
        let yaml = t.render(Format::Yaml);
        assert!(
            yaml.starts_with("- Cluster: batman\n  Host: 127.0.0.1:5432\n  Member: pg1\n"),
            "{yaml}"
        );
        assert!(!yaml.contains("Lag in MB: ''"), "{yaml}");
        assert!(yaml.contains("  Lag in MB: 0\n"), "{yaml}");
        assert_eq!(
            t.render(Format::Tsv),
            "Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB\nbatman\tpg1\t127.0.0.1:5432\tLeader\trunning\t1\t\n\
             batman\tpg2\t127.0.0.1:5433\tReplica\tstreaming\t1\t0\n"
        );
    }

    #[test]
    fn multiline_cells_get_row_lines() {
        let t = Table {
            columns: vec!["Cluster", "Member", "Tags"],
            rows: vec![
                vec![json!("c"), json!("a"), json!({"nofailover": true, "clonefrom": true})],
                vec![json!("c"), json!("b"), json!("")],
            ],
            right: vec![],
            title: Some(" Cluster: c ".into()),
        };
        let out = t.render(Format::Pretty);
        assert!(
            out.contains("| a      | clonefrom: true  |\n|        | nofailover: true |\n+--------+"),
            "{out}"
        );
        assert!(
            t.render(Format::Tsv)
                .contains("a\t{clonefrom: true, nofailover: true}\n")
        );
    }

    #[test]
    fn long_titles_are_cut_to_the_table() {
        assert_eq!(with_title("+----+----+", " Cluster: a-very-long-name "), "+ Cluster:+");
        assert_eq!(with_title("+----------+", " C "), "+ C -------+");
    }

    #[test]
    fn python_json() {
        assert_eq!(
            py_json(&json!({"a": [1, "é", null], "b": {"c": true}})),
            "{\"a\": [1, \"\\u00e9\", null], \"b\": {\"c\": true}}"
        );
        assert_eq!(py_json(&json!("😀")), "\"\\ud83d\\ude00\"");
    }
}
