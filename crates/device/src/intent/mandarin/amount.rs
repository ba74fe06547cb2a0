//! Mandarin money: an amount read from what Whisper writes (三十六块五, 两千五百元, 36.5元, 1.5万, 六块八毛), and said back in characters (三十六点五元), the first piece of the Mandarin language.
//!
//! Reading is strict, as the English readers are: digits run together
//! without a unit ("三五", three or five) and 亿 (beyond any payment) are
//! not amounts, and whatever does not continue an amount ends it. Amounts
//! are exact: the value goes through [`Money::parse_decimal`], so a yen
//! amount with a fraction is refused, never rounded.

use voicepay_core::money::{Currency, Money};

/// An amount at the start of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    pub money: Money,
    /// A currency or a money unit was said: 三十六 alone is a number, in
    /// the caller's default currency.
    pub unit_said: bool,
    /// Bytes of the text it took.
    pub len: usize,
}

/// Currency names, longest first where one ends another (美元 before 元).
const CURRENCY_NAMES: &[(&str, Currency)] = &[
    ("新加坡元", Currency::SGD),
    ("瑞士法郎", Currency::CHF),
    ("印度卢比", Currency::INR),
    ("新台币", Currency::TWD),
    ("人民币", Currency::CNY),
    ("美元", Currency::USD),
    ("美金", Currency::USD),
    ("欧元", Currency::EUR),
    ("英镑", Currency::GBP),
    ("日元", Currency::JPY),
    ("港币", Currency::HKD),
    ("港元", Currency::HKD),
    ("台币", Currency::TWD),
    ("韩元", Currency::KRW),
    ("澳元", Currency::AUD),
    ("加元", Currency::CAD),
    ("卢比", Currency::INR),
];

/// The yuan's own words: the major unit, then its tenths and hundredths.
const YUAN: &[&str] = &["块钱", "块", "元"];
const JIAO: &[&str] = &["毛", "角"];
const FEN: &str = "分";
/// Said after a yuan amount and ignored: 五十元人民币, 两块五毛钱.
const MONEY_TAILS: &[&str] = &["人民币", "钱"];

/// Signs Whisper writes before digits; ¥ is the yuan in a Chinese transcript.
const SIGNS: &[(&str, Currency)] = &[
    ("HK$", Currency::HKD),
    ("¥", Currency::CNY),
    ("￥", Currency::CNY),
    ("$", Currency::USD),
    ("€", Currency::EUR),
    ("£", Currency::GBP),
];

/// Reads the amount at the start of `text`; a bare number is in `default`.
pub fn read_amount(text: &str, default: Currency) -> Option<Amount> {
    let mut at = Cursor::new(text);
    let sign = SIGNS
        .iter()
        .find(|(sign, _)| at.eat(sign))
        .map(|(_, currency)| *currency);
    let prefixed = sign.or_else(|| at.eat("人民币").then_some(Currency::CNY));
    let number = read_number(&mut at)?;
    // 五毛, 八分钱: tenths or hundredths of a yuan alone.
    if prefixed.is_none_or(|p| p == Currency::CNY)
        && let Some(money) = read_minor_alone(&mut at, &number)
    {
        return Some(Amount {
            money,
            unit_said: true,
            len: at.pos,
        });
    }
    let named = CURRENCY_NAMES
        .iter()
        .find(|(name, _)| at.eat(name))
        .map(|(_, currency)| *currency);
    let yuan = named.is_none() && YUAN.iter().any(|word| at.eat(word));
    let currency = match (prefixed, named, yuan) {
        (Some(a), Some(b), _) if a != b => return None,
        (_, Some(named), _) => named,
        (_, None, true) if prefixed.is_some_and(|p| p != Currency::CNY) => return None,
        (_, None, true) => Currency::CNY,
        (Some(prefixed), None, false) => prefixed,
        (None, None, false) => default,
    };
    let unit_said = prefixed.is_some() || named.is_some() || yuan;
    if yuan {
        if number.contains('.') && at.peek_digit().is_some() {
            // 3.5块5 says the fraction twice.
            return None;
        }
        // 三十六块五, 六块八毛五: the yuan's tenths and hundredths after it.
        if let Some(money) = read_yuan_minor(&mut at, &number) {
            return Some(Amount {
                money,
                unit_said,
                len: at.pos,
            });
        }
    }
    if currency == Currency::CNY && unit_said {
        for tail in MONEY_TAILS {
            at.eat(tail);
        }
    }
    let money = Money::parse_decimal(&number, currency).ok()?;
    Some(Amount {
        money,
        unit_said,
        len: at.pos,
    })
}

/// After a yuan amount `major` (whole yuan): [digit 毛|角] [digit [分]],
/// digit 分, or a bare digit (三十六块五: five tenths). `None`, and the
/// cursor where it was, when none follows.
fn read_yuan_minor(at: &mut Cursor, major: &str) -> Option<Money> {
    let start = at.pos;
    let d = at.digit()?;
    let (jiao, fen) = if JIAO.iter().any(|w| at.eat(w)) {
        let fen = at.digit();
        if fen.is_some() {
            at.eat(FEN);
        }
        (d, fen.unwrap_or(0))
    } else if at.eat(FEN) {
        (0, d)
    } else if at.peek().and_then(unit_of).is_some() {
        // 三块五十: not a price anyone says.
        at.pos = start;
        return None;
    } else {
        (d, 0)
    };
    at.eat("钱");
    Money::parse_decimal(&format!("{major}.{jiao}{fen}"), Currency::CNY).ok()
}

/// A digit `number` followed by 毛 or 角 (and perhaps a digit of 分), or by
/// 分钱: an amount under a yuan. `None`, and the cursor where it was, otherwise.
fn read_minor_alone(at: &mut Cursor, number: &str) -> Option<Money> {
    let start = at.pos;
    let d: u64 = number.parse().ok().filter(|d| *d < 10)?;
    let (jiao, fen) = if JIAO.iter().any(|w| at.eat(w)) {
        let fen = at.digit();
        if fen.is_some() {
            at.eat(FEN);
        }
        (d, fen.unwrap_or(0))
    } else if at.eat("分钱") {
        (0, d)
    } else {
        at.pos = start;
        return None;
    };
    at.eat("钱");
    Money::parse_decimal(&format!("0.{jiao}{fen}"), Currency::CNY).ok()
}

/// A number at the cursor, as a decimal string ("2500", "36.5"): digits
/// (with grouping commas, a point, and 万 or 千 after them) or characters.
fn read_number(at: &mut Cursor) -> Option<String> {
    let start = at.pos;
    let number = read_digits(at).or_else(|| {
        at.pos = start;
        read_characters(at)
    });
    if number.is_none() {
        at.pos = start;
    }
    number
}

fn read_digits(at: &mut Cursor) -> Option<String> {
    let mut int = String::new();
    while let Some(c) = at.peek() {
        match c {
            '0'..='9' => int.push(c),
            '０'..='９' => int.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
            // Grouping: "2,500" (a comma followed by three digits).
            ',' if !int.is_empty() && at.ahead_digits(1) >= 3 => {}
            _ => break,
        }
        at.bump();
    }
    if int.is_empty() {
        return None;
    }
    let mut frac = String::new();
    if matches!(at.peek(), Some('.' | '．')) && at.ahead_digits(1) > 0 {
        at.bump();
        while let Some(c @ '0'..='9') = at.peek() {
            frac.push(c);
            at.bump();
        }
    }
    // 3万, 1.5万, 2千: digits times a unit.
    let shift = if at.eat("万") {
        4
    } else if at.eat("千") {
        3
    } else {
        0
    };
    Some(shifted(&int, &frac, shift))
}

/// `int.frac` times 10^shift, as a decimal string.
fn shifted(int: &str, frac: &str, shift: usize) -> String {
    let mut digits = format!("{int}{frac}");
    let mut frac_len = frac.len();
    if shift >= frac_len {
        digits.push_str(&"0".repeat(shift - frac_len));
        frac_len = 0;
    } else {
        frac_len -= shift;
    }
    let (int, frac) = digits.split_at(digits.len() - frac_len);
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

fn digit_of(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn unit_of(c: char) -> Option<u64> {
    match c {
        '十' => Some(10),
        '百' => Some(100),
        '千' => Some(1_000),
        _ => None,
    }
}

/// 两千五, 一万零五百, 三十六点五: characters up to 万 (亿 is no payment).
fn read_characters(at: &mut Cursor) -> Option<String> {
    let high = read_section(at)?;
    let int = if at.eat("万") {
        let low = read_section(at).unwrap_or_default();
        // 一万五: a lone digit after 万 is thousands.
        let low = low.value(1_000);
        high.value(0).checked_mul(10_000)?.checked_add(low)?
    } else {
        high.value(0)
    };
    if at.peek() == Some('亿') {
        return None;
    }
    let mut frac = String::new();
    if at.peek() == Some('点') {
        let before = at.pos;
        at.bump();
        while let Some(d) = at
            .peek()
            .and_then(digit_of)
            .filter(|_| at.peek() != Some('两'))
        {
            frac.push(char::from(b'0' + d as u8));
            at.bump();
        }
        if frac.is_empty() {
            at.pos = before;
        }
    }
    Some(if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    })
}

/// One group below 万: its units read so far, and a digit left after them.
#[derive(Debug, Default)]
struct Section {
    total: u64,
    /// The last unit said (十, 百, 千).
    last_unit: Option<u64>,
    /// A digit not followed by a unit.
    trailing: Option<u64>,
    /// 零 came just before the trailing digit: it is units, not elided.
    zero_before: bool,
}

impl Section {
    /// The value; `below_lone` is what a lone trailing digit counts when no
    /// unit came before it (after 万: thousands).
    fn value(&self, below_lone: u64) -> u64 {
        let trailing = self.trailing.unwrap_or(0);
        let scale = match self.last_unit {
            // 两千五, 三百五: a digit after the last unit is the next one down.
            Some(unit) if unit >= 100 && !self.zero_before => unit / 10,
            Some(_) => 1,
            None if below_lone > 0 && !self.zero_before && self.total == 0 => below_lone,
            None => 1,
        };
        self.total + trailing * scale
    }
}

fn read_section(at: &mut Cursor) -> Option<Section> {
    let start = at.pos;
    let mut section = Section::default();
    let mut pending: Option<u64> = None;
    let mut zero = false;
    while let Some(c) = at.peek() {
        if let Some(d) = digit_of(c) {
            if d == 0 {
                // 一百零五: 零 holds a place.
                if pending.is_some() {
                    break;
                }
                zero = true;
                at.bump();
                continue;
            }
            if pending.is_some() {
                // 三五: two digits with no unit, "three or five".
                at.pos = start;
                return None;
            }
            pending = Some(d);
            at.bump();
        } else if let Some(unit) = unit_of(c) {
            if section.last_unit.is_some_and(|last| unit >= last) {
                break;
            }
            // 十五: 十 alone at the start is ten.
            let times = match pending.take() {
                Some(d) => d,
                None if unit == 10 && section.last_unit.is_none() => 1,
                None if unit == 10 && zero => 1,
                None => {
                    at.pos = start;
                    return None;
                }
            };
            section.total += times * unit;
            section.last_unit = Some(unit);
            zero = false;
            at.bump();
        } else {
            break;
        }
    }
    if pending.is_none() && section.last_unit.is_none() && !zero {
        at.pos = start;
        return None;
    }
    section.trailing = pending;
    section.zero_before = zero;
    Some(section)
}

/// A position in the text, moved a character at a time.
#[derive(Clone)]
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        let found = self.rest().starts_with(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    /// ASCII digits right after the next `skip` characters.
    fn ahead_digits(&self, skip: usize) -> usize {
        self.rest()
            .chars()
            .skip(skip)
            .take_while(char::is_ascii_digit)
            .count()
    }

    fn peek_digit(&self) -> Option<u64> {
        let c = self.peek()?;
        c.to_digit(10).map(u64::from).or_else(|| digit_of(c))
    }

    /// One digit, as a character or an ASCII digit.
    fn digit(&mut self) -> Option<u64> {
        let d = self.peek_digit()?;
        self.bump();
        Some(d)
    }
}

/// `money` as Mandarin says it: 三十六点五元, 两百元, 一万零五百美元. The
/// fraction is read digit by digit and without its trailing zeros, as
/// people say prices (speech engines drop a bare decimal point in "36.5元").
pub fn say_amount(money: Money) -> String {
    let text = money.to_decimal_string();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut said = String::new();
    if negative {
        said.push('负');
    }
    said.push_str(&say_integer(int.parse().unwrap_or(0)));
    let frac = frac.trim_end_matches('0');
    if !frac.is_empty() {
        said.push('点');
        for c in frac.chars() {
            said.push(DIGITS[c.to_digit(10).unwrap_or(0) as usize]);
        }
    }
    said.push_str(currency_name(money.currency));
    said
}

const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// What base writes for an amount's words when it mishears them, and the
/// words meant: 酒 (jiǔ) for 九, 父母 (fùmǔ) for 五毛, and after a number 人
/// (rén) for 元 and 儿 (ér) for 二. Only ever proposed for the model to
/// weigh (see [`amount_rivals`]); a command is never read through them.
const SOUNDALIKES: &[(&str, &str)] = &[("酒", "九"), ("父母", "五毛")];
const AFTER_A_NUMBER: &[(char, char)] = &[('人', '元'), ('儿', '二')];

/// Whether `c` is part of a number as Whisper writes one.
fn in_number(c: char) -> bool {
    c.is_ascii_digit() || digit_of(c).is_some() || unit_of(c).is_some() || "万块点.".contains(c)
}

/// The first amount with its unit in a free decode's words, its
/// soundalikes read as meant: 29块酒 is 29.9 yuan, 15000人 is 15000 yuan.
pub fn heard_amount(text: &str, default: Currency) -> Option<Money> {
    let mut meant = simplet2s::convert(text);
    for (heard, word) in SOUNDALIKES {
        meant = meant.replace(heard, word);
    }
    let mut chars: Vec<char> = meant.chars().collect();
    for i in 1..chars.len() {
        let next_is_min = chars.get(i + 1) == Some(&'民');
        if let Some((_, word)) = AFTER_A_NUMBER.iter().find(|(heard, _)| *heard == chars[i])
            && in_number(chars[i - 1])
            && !next_is_min
        {
            chars[i] = *word;
        }
    }
    let meant: String = chars.iter().collect();
    let mut previous = None;
    for (at, c) in meant.char_indices() {
        let starts = (c.is_ascii_digit() || digit_of(c).is_some() || c == '十')
            && !previous.is_some_and(in_number);
        previous = Some(c);
        if !starts {
            continue;
        }
        if let Some(amount) = read_amount(&meant[at..], default).filter(|a| a.unit_said) {
            return Some(amount.money);
        }
    }
    None
}

/// The words a closed reading may have misheard in its amount: `onward`
/// is the reading from its amount on (三十一块给滴滴。); each rival is the
/// same words with the free decode's amount in its place, written as base
/// writes amounts (三十一块二, 31.2元, 三十一点二元). None when the reading
/// has no amount at its start or the free decode heard the same one.
pub fn amount_rivals(onward: &str, free_text: &str, default: Currency) -> Vec<String> {
    let said = onward.trim_start();
    let lead = &onward[..onward.len() - said.len()];
    let Some(reading) = read_amount(said, default) else {
        return Vec::new();
    };
    let rest = &said[reading.len..];
    let Some(heard) = heard_amount(free_text, default) else {
        return Vec::new();
    };
    if heard == reading.money {
        return Vec::new();
    }
    let unit = currency_name(heard.currency);
    let decimal = heard.to_decimal_string();
    let figures = match decimal.contains('.') {
        true => decimal.trim_end_matches('0').trim_end_matches('.'),
        false => decimal.as_str(),
    };
    let mut written = vec![say_amount(heard), format!("{figures}{unit}")];
    // 三十一块二: the yuan's tenths as people say them.
    if let Some((int, tenth)) = figures.split_once('.')
        && heard.currency == Currency::CNY
        && let Ok(tenth @ 1..=9) = tenth.parse::<usize>()
        && let Ok(int) = int.parse::<u64>()
    {
        written.push(format!("{}块{}", say_count(int), DIGITS[tenth]));
        written.push(format!("{int}块{tenth}"));
    }
    written.dedup();
    written
        .into_iter()
        .map(|amount| format!("{lead}{amount}{rest}"))
        .collect()
}

/// A count in characters, as said: 二十万, 两千零五, 一亿.
pub fn say_count(n: u64) -> String {
    say_integer(n)
}

/// Figures one by one in characters: "36.5" as 三六点五, a code "472" as
/// 四七二 (what the user checks digit by digit).
pub fn say_figures(figures: &str) -> String {
    figures
        .chars()
        .filter_map(|c| match c {
            '.' => Some('点'),
            '-' => Some('负'),
            d => d.to_digit(10).map(|d| DIGITS[d as usize]),
        })
        .collect()
}

/// The currency's own name (人民币 for the yuan): "your limit is in ...".
pub fn currency_word(currency: Currency) -> String {
    if currency == Currency::CNY {
        return "人民币".into();
    }
    match currency_name(currency) {
        "" => currency.code().to_owned(),
        name => name.to_owned(),
    }
}

/// The name said after an amount.
fn currency_name(currency: Currency) -> &'static str {
    if currency == Currency::CNY {
        return "元";
    }
    CURRENCY_NAMES
        .iter()
        .find(|(_, c)| *c == currency)
        .map_or("", |(name, _)| name)
}

/// 0 to 9,999,9999,9999 in characters (两 before 百, 千 and 万, as said).
fn say_integer(n: u64) -> String {
    if n == 0 {
        return "零".into();
    }
    let groups = [
        (n / 100_000_000, "亿"),
        ((n / 10_000) % 10_000, "万"),
        (n % 10_000, ""),
    ];
    let mut said = String::new();
    let mut zero_pending = false;
    for (value, mark) in groups {
        if value == 0 {
            zero_pending |= !said.is_empty();
            continue;
        }
        if !said.is_empty() && (zero_pending || value < 1_000) {
            said.push('零');
        }
        if value == 2 && !mark.is_empty() {
            // 两万, as said; 二万 only on paper.
            said.push('两');
        } else {
            said.push_str(&say_section(value, said.is_empty()));
        }
        said.push_str(mark);
        zero_pending = false;
    }
    said
}

/// 1 to 9999: 两千零五, 一百一十, and 十二 (not 一十二) at the very start.
fn say_section(n: u64, leading: bool) -> String {
    let places = [
        (n / 1_000, '千'),
        ((n / 100) % 10, '百'),
        ((n / 10) % 10, '十'),
        (n % 10, ' '),
    ];
    let mut said = String::new();
    let mut zero = false;
    for (digit, unit) in places {
        if digit == 0 {
            zero |= !said.is_empty();
            continue;
        }
        if zero {
            said.push('零');
            zero = false;
        }
        let first = said.is_empty();
        match (digit, unit) {
            (1, '十') if first && leading => {}
            (2, '千' | '百') if first => said.push('两'),
            (d, _) => said.push(DIGITS[d as usize]),
        }
        if unit != ' ' {
            said.push(unit);
        }
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(text: &str) -> Option<(i64, bool)> {
        read_amount(text, Currency::CNY).map(|a| (a.money.minor, a.unit_said))
    }

    fn read(text: &str) -> Option<Money> {
        read_amount(text, Currency::CNY).map(|a| a.money)
    }

    #[test]
    fn amounts_as_people_say_them_are_read_exactly() {
        for (said, minor) in [
            ("三十六元", 3_600),
            ("三十六块五", 3_650),
            ("三十六块五毛", 3_650),
            ("六块八毛", 680),
            ("六块八毛五", 685),
            ("六块八毛五分", 685),
            ("两块五毛钱", 250),
            ("三十六元五角", 3_650),
            ("两百元", 20_000),
            ("二百元", 20_000),
            ("两千五", 250_000),
            ("两千五百块", 250_000),
            ("三百五", 35_000),
            ("一百零五元", 10_500),
            ("一千零五十元", 105_000),
            ("十五块", 1_500),
            ("二十元", 2_000),
            ("一万五", 1_500_000),
            ("两万三千元", 2_300_000),
            ("一万零五百元", 1_050_000),
            ("三十六点五元", 3_650),
            ("零点五元", 50),
            ("十二点零五元", 1_205),
            ("五毛", 50),
            ("五毛钱", 50),
            ("五十元人民币", 5_000),
            ("人民币五十元", 5_000),
            ("36元", 3_600),
            ("36.5元", 3_650),
            ("36块5", 3_650),
            ("2,500元", 250_000),
            ("３６元", 3_600),
            ("3万元", 3_000_000),
            ("1.5万", 1_500_000),
            ("¥36.50", 3_650),
            ("两块", 200),
            ("一块钱", 100),
            ("三块五分", 305),
            ("五块三毛二", 532),
            ("八分钱", 8),
            ("两万", 2_000_000),
        ] {
            assert_eq!(cny(said).map(|(m, _)| m), Some(minor), "{said}");
        }
    }

    #[test]
    fn other_currencies_are_read_by_their_chinese_names() {
        for (said, money) in [
            ("五美元", Money::new(500, Currency::USD)),
            ("十二点五美金", Money::new(1_250, Currency::USD)),
            ("二十欧元", Money::new(2_000, Currency::EUR)),
            ("三英镑", Money::new(300, Currency::GBP)),
            ("五百日元", Money::new(500, Currency::JPY)),
            ("一百港币", Money::new(10_000, Currency::HKD)),
            ("一千韩元", Money::new(1_000, Currency::KRW)),
            ("十新加坡元", Money::new(1_000, Currency::SGD)),
            ("$5", Money::new(500, Currency::USD)),
        ] {
            assert_eq!(read(said), Some(money), "{said}");
        }
    }

    #[test]
    fn a_bare_number_is_in_the_default_currency_and_says_no_unit() {
        assert_eq!(cny("三十六"), Some((3_600, false)));
        let usd = read_amount("三十六", Currency::USD).unwrap();
        assert_eq!(usd.money, Money::new(3_600, Currency::USD));
        assert_eq!(cny("三十六块"), Some((3_600, true)));
    }

    #[test]
    fn what_is_not_one_amount_is_not_read() {
        for not_one in [
            "三五元",       // three or five
            "一二三",       // digits read out
            "三亿元",       // beyond any payment
            "喜茶",         // no number
            "百元",         // a unit with no digit
            "三五",         // nor as tenths
            "五点元",       // a point with nothing after it: five, then 点元
            "3.5块5",       // the fraction twice
            "五美元人民币", // two currencies
            "$5元",         // a dollar sign, then yuan
            "零点五日元",   // half a yen
        ] {
            let read = read_amount(not_one, Currency::CNY);
            match not_one {
                // The point is not part of the amount: five, then "点元".
                "五点元" => assert_eq!(read.map(|a| (a.money.minor, a.len)), Some((500, 3))),
                "五美元人民币" => assert!(read.is_some_and(|a| a.len < not_one.len())),
                _ => assert_eq!(read, None, "{not_one}"),
            }
        }
    }

    #[test]
    fn reading_stops_where_the_amount_ends() {
        let text = "三十六块五给瑞幸";
        let amount = read_amount(text, Currency::CNY).unwrap();
        assert_eq!(&text[amount.len..], "给瑞幸");
        let text = "两百元给张伟";
        let amount = read_amount(text, Currency::CNY).unwrap();
        assert_eq!(&text[amount.len..], "给张伟");
        assert_eq!(amount.money.minor, 20_000);
    }

    #[test]
    fn amounts_are_said_in_characters() {
        for (minor, currency, said) in [
            (3_650, Currency::CNY, "三十六点五元"),
            (3_600, Currency::CNY, "三十六元"),
            (20_000, Currency::CNY, "两百元"),
            (1_050_000, Currency::CNY, "一万零五百元"),
            (11_000, Currency::CNY, "一百一十元"),
            (1_205, Currency::CNY, "十二点零五元"),
            (50, Currency::CNY, "零点五元"),
            (500, Currency::USD, "五美元"),
            (500, Currency::JPY, "五百日元"),
            (250_000, Currency::CNY, "两千五百元"),
            (100_000_000, Currency::CNY, "一百万元"),
            (2_000_000, Currency::CNY, "两万元"),
            (2_200_000, Currency::CNY, "两万两千元"),
        ] {
            assert_eq!(say_amount(Money::new(minor, currency)), said);
        }
    }

    #[test]
    fn every_currency_has_a_chinese_name() {
        for currency in Currency::all() {
            let word = currency_word(currency);
            assert!(!word.is_ascii(), "{currency}: {word}");
            let said = say_amount(Money::new(500, currency));
            assert!(
                !said.is_ascii() && !said.contains(currency.code()),
                "{said}"
            );
        }
        assert_eq!(say_count(200_000), "二十万");
        assert_eq!(say_figures("472"), "四七二");
        assert_eq!(say_figures("36.5"), "三六点五");
    }

    #[test]
    fn every_amount_said_reads_back_as_itself() {
        let mut seed = 0x5eed_u64;
        for _ in 0..5_000 {
            // A small xorshift: many amounts, the same ones every run.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Up to 亿 (a hundred million) of the major unit, never reached.
            let minor = seed % 10_000_000_000;
            for currency in [Currency::CNY, Currency::USD, Currency::JPY] {
                let minor = if currency == Currency::JPY {
                    minor % 100_000_000
                } else {
                    minor
                };
                let money = Money::new(minor as i64, currency);
                let said = say_amount(money);
                let read = read_amount(&said, Currency::CNY);
                assert_eq!(
                    read.map(|a| (a.money, a.len)),
                    Some((money, said.len())),
                    "{said}"
                );
            }
        }
    }

    #[test]
    fn a_free_decodes_amount_is_heard_through_its_soundalikes() {
        let yuan = |minor| Some(Money::new(minor, Currency::CNY));
        for (text, money) in [
            ("帮我给美团付29块酒。", yuan(2990)),
            ("给滴滴付31块儿。", yuan(3120)),
            ("基爹的付15000人。", yuan(1_500_000)),
            ("給李娜转账1萬人", yuan(1_000_000)),
            ("给喜茶付六块父母", yuan(650)),
            ("给王芳付五十元人民币", yuan(5000)),
            ("给喜茶付三十六", None),
            ("今天天气不错", None),
        ] {
            assert_eq!(heard_amount(text, Currency::CNY), money, "{text}");
        }
    }

    #[test]
    fn a_readings_amount_is_weighed_against_the_one_the_free_decode_heard() {
        assert_eq!(
            amount_rivals("31块给滴滴。", "给滴滴付31块儿。", Currency::CNY),
            [
                "三十一点二元给滴滴。",
                "31.2元给滴滴。",
                "三十一块二给滴滴。",
                "31块2给滴滴。"
            ]
        );
        assert_eq!(
            amount_rivals("1美元。", "給李娜转账1萬人", Currency::CNY),
            ["一万元。", "10000元。"]
        );
        assert!(amount_rivals("29元。", "帮我给美团付29元。", Currency::CNY).is_empty());
        assert!(amount_rivals("29元。", "给美团付钱", Currency::CNY).is_empty());
        assert!(amount_rivals("给美团", "给美团付29块酒", Currency::CNY).is_empty());
    }
}
