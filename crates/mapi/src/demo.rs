//! Varied, realistic demo items generated from a seed (deterministic: the
//! same seed, count and base time always give the same items).
//!
//! Roughly: 70% mail (a third of them with attachments — files of a few
//! hundred bytes up to ~300 KB, inline images, forwarded messages embedded
//! up to two levels deep), 12% appointments/meetings, 8% contacts, 6% tasks,
//! 4% sticky notes.

use crate::builder::{
    self, Appointment, Contact, Mailbox, MessageBuilder, Task, note_color, task_status,
};
use crate::filetime::FileTime;
use crate::view::{Importance, Sensitivity};

/// 2024-01-01T00:00:00Z.
pub const DEFAULT_BASE: FileTime = FileTime(133_485_408_000_000_000);

const SECOND: u64 = 10_000_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// What kind of item a demo item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DemoKind {
    Mail,
    Appointment,
    Contact,
    Task,
    Note,
}

impl DemoKind {
    /// The well-known folder the item belongs in (`inbox`, `sentitems`,
    /// `calendar`, `contacts`, `tasks`, `notes`).
    pub fn default_folder(self) -> &'static str {
        match self {
            DemoKind::Mail => "inbox",
            DemoKind::Appointment => "calendar",
            DemoKind::Contact => "contacts",
            DemoKind::Task => "tasks",
            DemoKind::Note => "notes",
        }
    }
}

/// One generated item.
#[derive(Clone, Debug)]
pub struct DemoItem {
    pub kind: DemoKind,
    /// Well-known folder name: mail goes to `inbox` or `sentitems`.
    pub folder: &'static str,
    pub builder: MessageBuilder,
}

/// splitmix64: small, fast, good enough for varied demo data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
    "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoë", "José",
    "Łukasz", "Søren", "Mei",
];
const LAST: &[&str] = &[
    "Anderson", "Brown", "Chen", "Dubois", "Evans", "Fischer", "García", "Hansen", "Ito",
    "Johnson", "Kowalski", "Larsen", "Müller", "Nakamura", "O'Brien", "Patel", "Rossi", "Silva",
    "Taylor", "Weber",
];
const DOMAINS: &[&str] = &[
    "contoso.com",
    "fabrikam.com",
    "example.org",
    "northwind.net",
];
const COMPANIES: &[&str] = &[
    "Contoso Ltd",
    "Fabrikam Inc",
    "Northwind Traders",
    "Adventure Works",
    "Tailspin Toys",
];
const TITLES: &[&str] = &["Engineer", "Manager", "Director", "Analyst", "Consultant"];
const TOPICS: &[&str] = &[
    "Quarterly report",
    "Project Phoenix status",
    "Lunch on Friday?",
    "Invoice #{n}",
    "Release {n} planning",
    "Budget review",
    "Welcome to the team",
    "Server maintenance window",
    "Customer feedback summary",
    "Offsite agenda",
    "Travel itinerary",
    "Contract renewal",
    "Design review notes",
    "Weekly sync",
    "Re-org announcement",
    "Café meeting — déjà vu",
];
const PREFIXES: &[&str] = &["", "", "", "RE: ", "FW: ", "RE: "];
const SENTENCES: &[&str] = &[
    "Please find the latest numbers below.",
    "Let me know if you have any questions.",
    "I have attached the document we discussed.",
    "Can we move this to next week?",
    "Thanks for your help with the migration.",
    "The build is green again after the fix.",
    "We need a decision by Thursday.",
    "Here is a summary of the action items.",
    "The customer confirmed the new timeline.",
    "Looking forward to seeing everyone there.",
    "Grüße aus Berlin, und bis bald!",
    "日本語のテキストも含まれています。",
];
const CATEGORIES: &[&str] = &[
    "Red category",
    "Blue category",
    "Green category",
    "Important",
    "Follow up",
];
const LOCATIONS: &[&str] = &[
    "Conference Room A",
    "Building 4 / 2nd floor",
    "Microsoft Teams Meeting",
    "Café downstairs",
];

fn person(rng: &mut Rng) -> Mailbox {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let domain = rng.pick(DOMAINS);
    let local: String = format!("{first}.{last}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect::<String>()
        .to_ascii_lowercase();
    Mailbox::new(format!("{first} {last}"), format!("{local}@{domain}"))
}

fn paragraph(rng: &mut Rng, sentences: usize) -> String {
    (0..sentences)
        .map(|_| *rng.pick(SENTENCES))
        .collect::<Vec<_>>()
        .join(" ")
}

fn topic(rng: &mut Rng) -> String {
    let n = 100 + rng.below(900);
    rng.pick(TOPICS).replace("{n}", &n.to_string())
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn blob(rng: &mut Rng, len: usize, header: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; len.max(header.len())];
    rng.fill(&mut v);
    v[..header.len()].copy_from_slice(header);
    v
}

fn file_attachment(rng: &mut Rng) -> (String, &'static str, Vec<u8>) {
    match rng.below(5) {
        0 => {
            let len = 2_000 + rng.below(300_000) as usize;
            (
                format!("Report {}.pdf", 2020 + rng.below(6)),
                "application/pdf",
                blob(rng, len, b"%PDF-1.7\n"),
            )
        }
        1 => {
            let n = 3 + rng.below(40) as usize;
            let text = paragraph(rng, n);
            ("notes.txt".into(), "text/plain", text.into_bytes())
        }
        2 => {
            let len = 5_000 + rng.below(120_000) as usize;
            (
                "budget.xlsx".into(),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                blob(rng, len, b"PK\x03\x04"),
            )
        }
        3 => {
            let len = 10_000 + rng.below(200_000) as usize;
            (
                "photo.jpg".into(),
                "image/jpeg",
                blob(rng, len, b"\xFF\xD8\xFF\xE0"),
            )
        }
        _ => {
            let rows = 5 + rng.below(200);
            let mut csv = String::from("id,name,amount\n");
            for i in 0..rows {
                csv.push_str(&format!("{i},{},{}\n", rng.pick(FIRST), rng.below(10_000)));
            }
            ("export.csv".into(), "text/csv", csv.into_bytes())
        }
    }
}

fn mail(rng: &mut Rng, t: FileTime, depth: u32, seq: u64) -> (MessageBuilder, bool) {
    let from = person(rng);
    let me = Mailbox::new("Megan Bowen", "megan.bowen@contoso.com");
    let sent_by_me = depth == 0 && rng.chance(15);
    let subject = format!("{}{}", rng.pick(PREFIXES), topic(rng));
    let text = (0..1 + rng.below(4))
        .map(|_| {
            let n = 2 + rng.below(6) as usize;
            paragraph(rng, n)
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    let msg_id = format!("<{:016x}.{seq}@{}>", rng.next_u64(), rng.pick(DOMAINS));
    let mut b = MessageBuilder::mail()
        .subject(subject)
        .message_id(msg_id)
        .created(t)
        .sent(FileTime(t.0.saturating_sub(rng.below(120) * SECOND)))
        .received(t)
        .read(rng.chance(60));
    b = if sent_by_me {
        b.from(me.clone()).to(from.clone())
    } else {
        b.from(from.clone()).to(me.clone())
    };
    for _ in 0..rng.below(3) {
        b = b.to(person(rng));
    }
    for _ in 0..rng.below(3) {
        b = b.cc(person(rng));
    }
    if sent_by_me && rng.chance(20) {
        b = b.bcc(person(rng));
    }
    match rng.below(3) {
        0 => b = b.text_body(text),
        1 => {
            let html = format!(
                "<html><body>{}</body></html>",
                text.split("\n\n")
                    .map(|p| format!("<p>{}</p>", escape_html(p)))
                    .collect::<String>()
            );
            b = b.html_body(html);
        }
        _ => {
            let html = format!("<html><body><p>{}</p></body></html>", escape_html(&text));
            b = b.text_body(text).html_body(html);
        }
    }
    match rng.below(10) {
        0 => b = b.importance(Importance::High),
        1 => b = b.importance(Importance::Low),
        _ => {}
    }
    if rng.chance(5) {
        b = b.sensitivity(Sensitivity::Confidential);
    }
    if rng.chance(25) {
        b = b.category(*rng.pick(CATEGORIES));
        if rng.chance(30) {
            b = b.category(*rng.pick(CATEGORIES));
        }
    }
    if rng.chance(30) {
        b = b
            .header("X-Mailer", "graphbox demo")
            .header("X-MS-Has-Attach", "yes");
    }
    if rng.chance(33) {
        for _ in 0..1 + rng.below(3) {
            let (name, mime, data) = file_attachment(rng);
            b = b.attach(name, mime, data);
        }
    }
    if rng.chance(10) {
        let len = 800 + rng.below(20_000) as usize;
        let img = blob(rng, len, b"\x89PNG\r\n\x1a\n");
        b = b.attach_inline("logo.png", "image/png", img, format!("logo{seq}@demo"));
    }
    if depth < 2 && rng.chance(8) {
        let (inner, _) = mail(rng, FileTime(t.0.saturating_sub(DAY)), depth + 1, seq);
        b = b.attach_message(inner);
    }
    (b, sent_by_me)
}

/// `n` demo items from `seed`, timestamps spread over the ~90 days after
/// [`DEFAULT_BASE`].
pub fn items(seed: u64, n: usize) -> Vec<DemoItem> {
    items_at(seed, n, DEFAULT_BASE)
}

/// `n` demo items from `seed`, timestamps spread after `base`.
pub fn items_at(seed: u64, n: usize, base: FileTime) -> Vec<DemoItem> {
    stream(seed, base, None).take(n).collect()
}

/// An endless, lazily generated sequence of demo items from `seed` (bounded
/// memory however many are taken). With `kind`, every item is of that kind
/// (what a folder of that class holds: mail, appointments, contacts, tasks or
/// notes); without, the mix of [`items_at`].
pub fn stream(seed: u64, base: FileTime, kind: Option<DemoKind>) -> impl Iterator<Item = DemoItem> {
    let mut rng = Rng::new(seed);
    (0u64..).map(move |i| {
        let i = i as usize;
        let t = FileTime(base.0 + rng.below(90 * DAY / MINUTE) * MINUTE + i as u64 * SECOND);
        let roll = match kind {
            None => rng.below(100),
            Some(DemoKind::Mail) => 0,
            Some(DemoKind::Appointment) => 70,
            Some(DemoKind::Contact) => 82,
            Some(DemoKind::Task) => 90,
            Some(DemoKind::Note) => 96,
        };
        if roll < 70 {
            let (builder, sent) = mail(&mut rng, t, 0, i as u64);
            DemoItem {
                kind: DemoKind::Mail,
                folder: if sent { "sentitems" } else { "inbox" },
                builder,
            }
        } else if roll < 82 {
            let start = FileTime(t.0 + rng.below(14) * DAY + (8 + rng.below(9)) * HOUR);
            let end = FileTime(start.0 + (1 + rng.below(4)) * 30 * MINUTE);
            let attendees = rng.below(5) as usize;
            let a = Appointment {
                subject: topic(&mut rng),
                start,
                end,
                location: rng.chance(80).then(|| rng.pick(LOCATIONS).to_string()),
                organizer: person(&mut rng),
                required: (0..attendees).map(|_| person(&mut rng)).collect(),
                optional: (0..rng.below(2)).map(|_| person(&mut rng)).collect(),
                body: rng.chance(50).then(|| paragraph(&mut rng, 3)),
                created: t,
                all_day: rng.chance(5),
            };
            DemoItem {
                kind: DemoKind::Appointment,
                folder: "calendar",
                builder: builder::calendar_item(&a),
            }
        } else if roll < 90 {
            let p = person(&mut rng);
            let (given, surname) = p.name.split_once(' ').unwrap_or((&p.name, ""));
            let phone = |rng: &mut Rng| format!("+1 425 555 {:04}", rng.below(10_000));
            let c = Contact {
                given_name: given.to_owned(),
                surname: surname.to_owned(),
                email: p.email.clone(),
                company: rng.chance(80).then(|| rng.pick(COMPANIES).to_string()),
                job_title: rng.chance(60).then(|| rng.pick(TITLES).to_string()),
                business_phone: rng.chance(70).then(|| phone(&mut rng)),
                mobile_phone: rng.chance(50).then(|| phone(&mut rng)),
                home_phone: rng.chance(20).then(|| phone(&mut rng)),
                created: t,
            };
            DemoItem {
                kind: DemoKind::Contact,
                folder: "contacts",
                builder: builder::contact(&c),
            }
        } else if roll < 96 {
            let status = *rng.pick(&[
                task_status::NOT_STARTED,
                task_status::IN_PROGRESS,
                task_status::COMPLETE,
                task_status::WAITING,
            ]);
            let tk = Task {
                subject: format!("Follow up: {}", topic(&mut rng)),
                start: Some(t),
                due: rng
                    .chance(80)
                    .then(|| FileTime(t.0 + (1 + rng.below(30)) * DAY)),
                status,
                percent_complete: match status {
                    task_status::COMPLETE => 1.0,
                    task_status::NOT_STARTED => 0.0,
                    _ => 0.25 * (1 + rng.below(3)) as f64,
                },
                body: rng.chance(50).then(|| paragraph(&mut rng, 2)),
                owner: Some("Megan Bowen".into()),
                created: t,
            };
            DemoItem {
                kind: DemoKind::Task,
                folder: "tasks",
                builder: builder::task(&tk),
            }
        } else {
            let text = format!("{}\n{}", topic(&mut rng), paragraph(&mut rng, 2));
            let color = *rng.pick(&[
                note_color::YELLOW,
                note_color::BLUE,
                note_color::GREEN,
                note_color::PINK,
            ]);
            DemoItem {
                kind: DemoKind::Note,
                folder: "notes",
                builder: builder::note(&text, color, t),
            }
        }
    })
}
