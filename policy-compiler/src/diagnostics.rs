//! Problems found in a policy file, pointing at file, line and column, with a help text;
//! rendered by miette for people, or as JSON for machines.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};
use serde::Serialize;

/// A file's name and text, shared by every problem found in it.
#[derive(Debug, Clone)]
pub struct Source {
    name: String,
    text: Arc<String>,
}

impl Source {
    pub fn new(path: &Path, text: String) -> Self {
        Source { name: path.display().to_string(), text: Arc::new(text) }
    }


    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Byte offset of a 1-based line and column.
    pub fn offset_of(&self, line: usize, column: usize) -> usize {
        let start: usize = self.text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
        (start + column.saturating_sub(1)).min(self.text.len())
    }

    /// 1-based line and column of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// Finds the `nth` (0-based) mention of `needle`, JSON-escaped or raw.
    pub fn locate_nth(&self, needle: &str, nth: usize) -> Option<(usize, usize)> {
        let escaped = serde_json::to_string(needle).ok()?;
        for spelling in [escaped.as_str(), needle] {
            let mut from = 0;
            let mut found = None;
            for _ in 0..=nth {
                found = self.text.get(from..).and_then(|rest| rest.find(spelling)).map(|at| from + at);
                from = found.map_or(self.text.len(), |at| at + spelling.len());
            }
            if let Some(at) = found {
                return Some((at, spelling.len()));
            }
        }
        None
    }

    /// Finds `needle` at or after the first mention of `anchor` (a policy id, say): the
    /// JSON-escaped spelling first (a regex's `\` is doubled in JSON), then the raw one.
    pub fn locate(&self, anchor: &str, needle: &str) -> Option<(usize, usize)> {
        let from = self.text.find(anchor).unwrap_or(0);
        let rest = self.text.get(from..)?;
        let escaped = serde_json::to_string(needle).ok()?;
        let escaped = escaped.get(1..escaped.len().saturating_sub(1)).unwrap_or(needle);
        [escaped, needle]
            .iter()
            .filter(|n| !n.is_empty())
            .find_map(|n| rest.find(n).map(|at| (from + at, n.len())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    /// How an input was understood, where that may surprise: never fails `check --strict`.
    Note,
}

/// One finding. Errors stop `compile`; warnings are reported and `check --strict` fails on them.
#[derive(Debug, Clone)]
pub struct Problem {
    pub level: Level,
    pub code: String,
    pub message: String,
    pub help: Option<String>,
    pub file: Option<Source>,
    pub span: Option<(usize, usize)>,
    pub label: String,
}

impl Problem {
    pub fn error(code: &str, message: String) -> Self {
        Problem { level: Level::Error, code: code.into(), message, help: None, file: None, span: None, label: String::new() }
    }

    pub fn warning(code: &str, message: String) -> Self {
        Problem { level: Level::Warning, ..Problem::error(code, message) }
    }

    pub fn note(code: &str, message: String) -> Self {
        Problem { level: Level::Note, ..Problem::error(code, message) }
    }

    pub fn help(mut self, help: &str) -> Self {
        self.help = Some(help.to_string());
        self
    }

    pub fn at(mut self, source: &Source, offset: usize, len: usize, label: &str) -> Self {
        self.file = Some(source.clone());
        self.span = Some((offset, len));
        self.label = label.to_string();
        self
    }

    pub fn in_file(mut self, source: &Source) -> Self {
        self.file = Some(source.clone());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    pub fn is_warning(&self) -> bool {
        self.level == Level::Warning
    }

    pub fn to_json(&self) -> serde_json::Value {
        let (line, column) = match (&self.file, self.span) {
            (Some(file), Some((offset, _))) => {
                let (line, column) = file.line_column(offset);
                (Some(line), Some(column))
            }
            _ => (None, None),
        };
        serde_json::json!({
            "level": self.level,
            "code": self.code,
            "message": self.message,
            "help": self.help,
            "file": self.file.as_ref().map(Source::name),
            "line": line,
            "column": column,
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

/// miette needs a `SourceCode` that owns its name; built on demand from [`Source`].
struct Named(NamedSource<Arc<String>>);

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("policy::{}", self.code)))
    }

    fn severity(&self) -> Option<Severity> {
        Some(match self.level {
            Level::Error => Severity::Error,
            Level::Warning => Severity::Warning,
            Level::Note => Severity::Advice,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        None
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (offset, len) = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new(Some(self.label.clone()), offset, len))))
    }
}

/// Renders a problem for a terminal, with the source snippet when there is one.
pub fn render(problem: &Problem) -> String {
    let report = match &problem.file {
        Some(file) if problem.span.is_some() => {
            let named = Named(NamedSource::new(file.name(), file.text.clone()));
            miette::Report::new(problem.clone()).with_source_code(named.0)
        }
        Some(file) => miette::Report::new(problem.clone().help_suffix(file.name())),
        None => miette::Report::new(problem.clone()),
    };
    format!("{report:?}")
}

impl Problem {
    fn help_suffix(mut self, file: &str) -> Self {
        self.message = format!("{file}: {}", self.message);
        self
    }
}
