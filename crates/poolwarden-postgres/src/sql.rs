//! What a statement's text says it may do to the session: the rules behind
//! [`ResetPolicy::Auto`](crate::ResetPolicy::Auto).
//!
//! tokio-postgres does not expose the transaction status of the server's
//! `ReadyForQuery` message, nor anything about session state, so the
//! [`PgConn`](crate::PgConn) wrapper reads the SQL text of every statement
//! it runs. The rules err on the side of a reset: a statement they do not
//! know counts as changing the session.

/// How deep a statement may change the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum SessionEffect {
    /// Nothing that outlives the statement or its transaction.
    #[default]
    None,
    /// Session state the "Clean" sequence undoes (`SET`, temporary tables,
    /// advisory locks, `LISTEN`, cursors `WITH HOLD`, role changes).
    State,
    /// SQL-level prepared statements (`PREPARE`, `DEALLOCATE`), `DISCARD`,
    /// code the text does not show (`DO`, `CALL`, unknown statements):
    /// only `DISCARD ALL` undoes everything.
    Deep,
}

/// What a statement does to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxEffect {
    /// Neither opens nor ends one.
    #[default]
    None,
    /// `BEGIN`, `START TRANSACTION`, `COMMIT AND CHAIN`.
    Begin,
    /// `COMMIT`, `END`, `ROLLBACK`, `ABORT` (not `ROLLBACK TO`).
    End,
    /// Several statements (a simple-query batch) of which some open or end
    /// transactions. If the batch succeeds, a transaction is open afterwards
    /// when `ends_open`; if it fails, one may be open.
    Batch {
        /// The last statement that opens or ends a transaction opens one.
        ends_open: bool,
    },
}

/// A statement's effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effect {
    /// On the session.
    pub session: SessionEffect,
    /// On the transaction.
    pub tx: TxEffect,
}

impl Effect {
    /// Something that changes session state in ways no text shows (raw use
    /// of the client, an unknown prepared statement).
    pub const UNKNOWN: Effect = Effect {
        session: SessionEffect::Deep,
        tx: TxEffect::Batch { ends_open: true },
    };
}

/// The effects of `sql`, which may hold several `;`-separated statements.
///
/// Runs on every command: one pass over the text, no allocation; bytes
/// that can start neither a word nor a quote, a comment or a statement's
/// end are skipped in a tight loop, and each word is looked up once.
pub fn effect(sql: &str) -> Effect {
    let bytes = sql.as_bytes();
    let mut batch = Batch::default();
    let mut statement = Statement::default();
    let (mut start, mut i) = (0, 0);
    loop {
        i += bytes[i..]
            .iter()
            .position(|b| CLASS[usize::from(*b)] & (WORD_START | SPECIAL) != 0)
            .unwrap_or(bytes.len() - i);
        let Some(&b) = bytes.get(i) else {
            batch.add(&sql[start..], statement);
            return batch.effect();
        };
        if CLASS[usize::from(b)] & WORD_START != 0 {
            let end = bytes[i..]
                .iter()
                .position(|b| CLASS[usize::from(*b)] & WORD == 0)
                .map_or(bytes.len(), |n| i + n);
            statement.word(kw(&bytes[i..end]));
            i = end;
            continue;
        }
        i = match b {
            b';' => {
                batch.add(&sql[start..i], std::mem::take(&mut statement));
                start = i + 1;
                i + 1
            }
            b'\'' | b'"' => skip_quoted(bytes, i),
            b'-' if bytes.get(i + 1) == Some(&b'-') => bytes[i..]
                .iter()
                .position(|c| *c == b'\n')
                .map_or(bytes.len(), |n| i + n),
            b'/' if bytes.get(i + 1) == Some(&b'*') => skip_block_comment(bytes, i),
            b'$' => skip_dollar_quoted(sql, i).max(i + 1),
            _ => i + 1,
        };
    }
}

/// The statements of a batch so far.
#[derive(Default)]
struct Batch {
    /// The first statement's effect, then the deepest session effect.
    total: Option<Effect>,
    /// The last transaction effect other than none.
    last_tx: TxEffect,
    several: bool,
}

impl Batch {
    /// The statement `text` (blank ones do not count) with its words.
    fn add(&mut self, text: &str, statement: Statement) {
        if text.trim().is_empty() {
            return;
        }
        let e = statement.effect();
        match &mut self.total {
            None => {
                self.total = Some(e);
                self.last_tx = e.tx;
            }
            Some(total) => {
                self.several = true;
                total.session = total.session.max(e.session);
                if e.tx != TxEffect::None {
                    self.last_tx = e.tx;
                }
            }
        }
    }

    fn effect(self) -> Effect {
        let mut total = self.total.unwrap_or_default();
        if self.several && self.last_tx != TxEffect::None {
            total.tx = TxEffect::Batch {
                ends_open: self.last_tx == TxEffect::Begin,
            };
        }
        total
    }
}

/// Whether `sql` may change session state (any [`SessionEffect`] above
/// `None`).
pub fn may_change_session(sql: &str) -> bool {
    effect(sql).session != SessionEffect::None
}

fn skip_quoted(bytes: &[u8], at: usize) -> usize {
    let q = bytes[at];
    let mut i = at + 1;
    while i < bytes.len() {
        if bytes[i] == q {
            if bytes.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    i
}

fn skip_block_comment(bytes: &[u8], at: usize) -> usize {
    let mut i = at + 2;
    while i + 1 < bytes.len() {
        if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            return i + 2;
        }
        i += 1;
    }
    bytes.len()
}

/// `$tag$ ... $tag$` (function bodies); a `$1` parameter is not a quote.
fn skip_dollar_quoted(sql: &str, at: usize) -> usize {
    let rest = &sql[at + 1..];
    let tag_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if rest.as_bytes().get(tag_len) != Some(&b'$') || rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return at + 1;
    }
    let tag = &sql[at..at + tag_len + 2];
    let body = at + tag.len();
    match sql[body..].find(tag) {
        Some(end) => body + end + tag.len(),
        None => sql.len(),
    }
}

/// [`CLASS`] bits: a word starts with this byte (a letter, `_`).
const WORD_START: u8 = 1;
/// A word goes on with this byte (a letter, a digit, `_`).
const WORD: u8 = 2;
/// Quotes, comments, dollar quoting or a statement's end may start here.
const SPECIAL: u8 = 4;

/// What each byte may be to [`effect`], looked up once per byte.
const CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' {
            class[b] = WORD_START | WORD;
        } else if c.is_ascii_digit() {
            class[b] = WORD;
        } else if matches!(c, b';' | b'\'' | b'"' | b'-' | b'/' | b'$') {
            class[b] = SPECIAL;
        }
        b += 1;
    }
    class
};

/// What a word is to the rules below. Each word of a statement is looked
/// up once (lower-cased on the stack, then one `match`): this runs on every
/// command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Begin,
    Start,
    Commit,
    End,
    Rollback,
    Abort,
    Set,
    Reset,
    Listen,
    Unlisten,
    Declare,
    Create,
    Select,
    With,
    /// A statement that changes no session state by itself (the functions
    /// it calls are looked at separately): `INSERT`, `UPDATE`, `ALTER`, ...
    Harmless,
    To,
    Prepared,
    Local,
    Transaction,
    Constraints,
    Temp,
    Into,
    Hold,
    Chain,
    No,
    /// A function whose effect outlives the transaction
    /// (`pg_advisory_lock`, `set_config`, `dblink_connect`, ...).
    SessionFunction,
    Other,
}

/// The longest word [`kw`] knows (`pg_try_advisory_lock_shared`).
const LONGEST_KEYWORD: usize = 27;

fn kw(word: &[u8]) -> Kw {
    let (Some(first), 2..=LONGEST_KEYWORD) = (word.first(), word.len()) else {
        return Kw::Other;
    };
    let is = |k: &[u8]| word.eq_ignore_ascii_case(k);
    // By length and first letter, then the candidates (generated from the
    // keyword lists; `kw_knows_every_keyword` checks them).
    match (word.len(), first.to_ascii_lowercase()) {
        (2, b'n') if is(b"no") => Kw::No,
        (2, b't') if is(b"to") => Kw::To,
        (3, b'e') if is(b"end") => Kw::End,
        (3, b's') if is(b"set") => Kw::Set,
        (4, b'c') if is(b"copy") => Kw::Harmless,
        (4, b'd') if is(b"drop") => Kw::Harmless,
        (4, b'h') if is(b"hold") => Kw::Hold,
        (4, b'i') if is(b"into") => Kw::Into,
        (4, b'l') if is(b"lock") => Kw::Harmless,
        (4, b'm') if is(b"move") => Kw::Harmless,
        (4, b's') if is(b"show") => Kw::Harmless,
        (4, b't') if is(b"temp") => Kw::Temp,
        (4, b'w') if is(b"with") => Kw::With,
        (5, b'a') => match () {
            () if is(b"abort") => Kw::Abort,
            () if is(b"alter") => Kw::Harmless,
            () => Kw::Other,
        },
        (5, b'b') if is(b"begin") => Kw::Begin,
        (5, b'c') => match () {
            () if is(b"close") => Kw::Harmless,
            () if is(b"chain") => Kw::Chain,
            () => Kw::Other,
        },
        (5, b'f') if is(b"fetch") => Kw::Harmless,
        (5, b'g') if is(b"grant") => Kw::Harmless,
        (5, b'l') if is(b"local") => Kw::Local,
        (5, b'm') if is(b"merge") => Kw::Harmless,
        (5, b'r') if is(b"reset") => Kw::Reset,
        (5, b's') if is(b"start") => Kw::Start,
        (5, b't') if is(b"table") => Kw::Harmless,
        (6, b'c') => match () {
            () if is(b"commit") => Kw::Commit,
            () if is(b"create") => Kw::Create,
            () => Kw::Other,
        },
        (6, b'd') if is(b"delete") => Kw::Harmless,
        (6, b'i') => match () {
            () if is(b"insert") => Kw::Harmless,
            () if is(b"import") => Kw::Harmless,
            () => Kw::Other,
        },
        (6, b'l') if is(b"listen") => Kw::Listen,
        (6, b'n') if is(b"notify") => Kw::Harmless,
        (6, b'r') if is(b"revoke") => Kw::Harmless,
        (6, b's') if is(b"select") => Kw::Select,
        (6, b'u') if is(b"update") => Kw::Harmless,
        (6, b'v') => match () {
            () if is(b"values") => Kw::Harmless,
            () if is(b"vacuum") => Kw::Harmless,
            () => Kw::Other,
        },
        (7, b'a') => match () {
            () if is(b"analyze") => Kw::Harmless,
            () if is(b"analyse") => Kw::Harmless,
            () => Kw::Other,
        },
        (7, b'c') => match () {
            () if is(b"comment") => Kw::Harmless,
            () if is(b"cluster") => Kw::Harmless,
            () => Kw::Other,
        },
        (7, b'd') if is(b"declare") => Kw::Declare,
        (7, b'e') if is(b"explain") => Kw::Harmless,
        (7, b'p') if is(b"pg_temp") => Kw::Temp,
        (7, b'r') => match () {
            () if is(b"release") => Kw::Harmless,
            () if is(b"refresh") => Kw::Harmless,
            () if is(b"reindex") => Kw::Harmless,
            () => Kw::Other,
        },
        (8, b'p') if is(b"prepared") => Kw::Prepared,
        (8, b'r') if is(b"rollback") => Kw::Rollback,
        (8, b's') if is(b"security") => Kw::Harmless,
        (8, b't') if is(b"truncate") => Kw::Harmless,
        (8, b'u') if is(b"unlisten") => Kw::Unlisten,
        (9, b's') if is(b"savepoint") => Kw::Harmless,
        (9, b't') if is(b"temporary") => Kw::Temp,
        (10, b'c') if is(b"checkpoint") => Kw::Harmless,
        (10, b's') if is(b"set_config") => Kw::SessionFunction,
        (11, b'c') if is(b"constraints") => Kw::Constraints,
        (11, b't') if is(b"transaction") => Kw::Transaction,
        (14, b'd') if is(b"dblink_connect") => Kw::SessionFunction,
        (16, b'd') if is(b"dblink_connect_u") => Kw::SessionFunction,
        (16, b'p') if is(b"pg_advisory_lock") => Kw::SessionFunction,
        (20, b'p') if is(b"pg_try_advisory_lock") => Kw::SessionFunction,
        (23, b'p') if is(b"pg_advisory_lock_shared") => Kw::SessionFunction,
        (27, b'p') if is(b"pg_try_advisory_lock_shared") => Kw::SessionFunction,
        _ => Kw::Other,
    }
}

/// One statement's words as the rules need them: the first two, and which
/// of the others occur anywhere in it.
#[derive(Default)]
struct Statement {
    first: Option<Kw>,
    second: Option<Kw>,
    temp: bool,
    into: bool,
    hold: bool,
    chain: bool,
    no: bool,
    session_function: bool,
}

impl Statement {
    fn word(&mut self, k: Kw) {
        if self.first.is_none() {
            self.first = Some(k);
        } else if self.second.is_none() {
            self.second = Some(k);
        }
        match k {
            Kw::Temp => self.temp = true,
            Kw::Into => self.into = true,
            Kw::Hold => self.hold = true,
            Kw::Chain => self.chain = true,
            Kw::No => self.no = true,
            Kw::SessionFunction => self.session_function = true,
            _ => {}
        }
    }

    fn effect(&self) -> Effect {
        let Some(first) = self.first else {
            return Effect::default();
        };
        let tx = match first {
            Kw::Begin | Kw::Start => TxEffect::Begin,
            Kw::Commit | Kw::End | Kw::Rollback | Kw::Abort => match self.second {
                Some(Kw::To | Kw::Prepared) => TxEffect::None,
                _ if self.chain && !self.no => TxEffect::Begin,
                _ => TxEffect::End,
            },
            _ => TxEffect::None,
        };
        let session = match first {
            Kw::Begin | Kw::Start | Kw::Commit | Kw::End | Kw::Rollback | Kw::Abort => {
                SessionEffect::None
            }
            // Transaction-scoped settings end with the transaction.
            Kw::Set => match self.second {
                Some(Kw::Local | Kw::Transaction | Kw::Constraints) => SessionEffect::None,
                _ => SessionEffect::State,
            },
            Kw::Reset | Kw::Listen | Kw::Unlisten => SessionEffect::State,
            Kw::Declare if self.hold => SessionEffect::State,
            Kw::Declare => SessionEffect::None,
            Kw::Create if self.temp => SessionEffect::State,
            Kw::Create => SessionEffect::None,
            // `SELECT ... INTO TEMP t`.
            Kw::Select | Kw::With if self.temp && self.into => SessionEffect::State,
            Kw::Select | Kw::With | Kw::Harmless => SessionEffect::None,
            // prepare, deallocate, execute, discard, do, call, load, unknown
            // statements, ...
            _ => SessionEffect::Deep,
        };
        let session = if self.session_function {
            session.max(SessionEffect::State)
        } else {
            session
        };
        Effect { session, tx }
    }
}

#[cfg(test)]
mod tests;
