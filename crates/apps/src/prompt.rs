//! The prompt catalogue: every prompt the voice applications play, with its English and Japanese
//! text, and the functions that turn numbers, counts, times and extension numbers into the list
//! of prompt ids a caller hears, per language.
//!
//! Prompt ids are language-neutral (`vm-enter-pin`, `num-20`); each id has a text in every
//! language. Where the two languages order a sentence differently (counts, parked slots, times),
//! the composing functions here pick the order, so an application only says *what* to announce.
//! Japanese entries carry a kana reading besides the display text: the text-to-speech engine
//! installed by default (espeak-ng) reads kana but not kanji (docs/prompts.md).

use serde::Serialize;

/// A prompt language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    En,
    /// Japanese.
    Ja,
}

impl Lang {
    /// Every language, in display order.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ja];

    /// The code used in paths, settings and the API (`en`, `ja`).
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// The language of a stored `prompts.language` setting: English when unset or unknown.
    pub fn from_setting(value: Option<&str>) -> Lang {
        value.and_then(|v| v.parse().ok()).unwrap_or(Lang::En)
    }

    /// The other language (the resolver's fallback).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ja,
            Lang::Ja => Lang::En,
        }
    }
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Lang, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Ok(Lang::En),
            "ja" => Ok(Lang::Ja),
            other => Err(format!("unknown language {other:?}: use en or ja")),
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which application (or building block) a prompt belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Calls in general: busy circuits, barred numbers, please wait, goodbye.
    Call,
    /// Auto-attendant menus.
    Ivr,
    /// Voicemail: leaving and retrieving messages.
    Voicemail,
    /// Conference rooms.
    Conference,
    /// Call park.
    Park,
    /// Call recording.
    Recording,
    /// Feature codes: DND, forwarding, day/night mode.
    Feature,
    /// Single digits (extension numbers, PINs read back).
    Digit,
    /// Number words used to say counts and slots.
    Number,
    /// Japanese counters (件, 番, 時, 分) and their sound-changed forms.
    Counter,
    /// Time of day.
    Time,
}

impl Category {
    /// The name used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Call => "call",
            Category::Ivr => "ivr",
            Category::Voicemail => "voicemail",
            Category::Conference => "conference",
            Category::Park => "park",
            Category::Recording => "recording",
            Category::Feature => "feature",
            Category::Digit => "digit",
            Category::Number => "number",
            Category::Counter => "counter",
            Category::Time => "time",
        }
    }
}

/// One catalogue entry.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prompt {
    /// Stable number a phone dials to name the prompt (`record_prompt`, `*77` + number).
    /// Given once and never reused or renumbered: a new prompt takes the next unused number,
    /// wherever it sits in the catalogue.
    pub number: u16,
    /// Language-neutral id (`[a-z0-9-]`), also the file name without `.wav`.
    pub id: &'static str,
    /// Application it belongs to.
    pub category: Category,
    /// English text (also what the English voice reads).
    pub en: &'static str,
    /// Japanese text as shown to people.
    pub ja: &'static str,
    /// Japanese reading in kana, what the Japanese voice reads.
    pub ja_kana: &'static str,
}

impl Prompt {
    /// The text shown for `lang`.
    pub fn text(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Ja => self.ja,
        }
    }

    /// The text a speech synthesiser reads for `lang`.
    pub fn spoken(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Ja => self.ja_kana,
        }
    }
}

const fn p(
    number: u16,
    id: &'static str,
    category: Category,
    en: &'static str,
    ja: &'static str,
    ja_kana: &'static str,
) -> Prompt {
    Prompt {
        number,
        id,
        category,
        en,
        ja,
        ja_kana,
    }
}

use Category::*;

/// Every prompt, grouped by application.
pub const CATALOGUE: &[Prompt] = &[
    // Calls in general.
    p(
        1,
        "please-wait",
        Call,
        "Please wait.",
        "少々お待ちください。",
        "しょうしょう おまちください。",
    ),
    p(
        2,
        "goodbye",
        Call,
        "Goodbye.",
        "ご利用ありがとうございました。",
        "ごりよう ありがとう ございました。",
    ),
    p(
        3,
        "all-circuits-busy",
        Call,
        "All circuits are busy now. Please try your call again later.",
        "ただいま回線が大変混み合っております。しばらくたってからおかけ直しください。",
        "ただいま かいせんが たいへん こみあって おります。しばらく たってから おかけなおし ください。",
    ),
    p(
        4,
        "not-allowed",
        Call,
        "You are not allowed to call this number.",
        "この番号への発信は許可されていません。",
        "この ばんごうへの はっしんは きょか されて いません。",
    ),
    p(
        5,
        "number-not-in-service",
        Call,
        "The number you dialled is not in service.",
        "おかけになった番号は、現在使われておりません。",
        "おかけに なった ばんごうは、げんざい つかわれて おりません。",
    ),
    p(
        6,
        "ext-unavailable",
        Call,
        "The extension you dialled is not available.",
        "おかけになった内線は、ただいま応答できません。",
        "おかけに なった ないせんは、ただいま おうとう できません。",
    ),
    p(
        7,
        "transfer-hold",
        Call,
        "Please hold while I transfer your call.",
        "おつなぎしますので、少々お待ちください。",
        "おつなぎ しますので、しょうしょう おまちください。",
    ),
    p(
        8,
        "transfer",
        Call,
        "Transferring your call.",
        "転送します。",
        "てんそう します。",
    ),
    p(
        9,
        "transfer-failed",
        Call,
        "The transfer did not succeed.",
        "転送できませんでした。",
        "てんそう できません でした。",
    ),
    // Auto-attendant.
    p(
        10,
        "ivr-welcome",
        Ivr,
        "Thank you for calling.",
        "お電話ありがとうございます。",
        "おでんわ ありがとう ございます。",
    ),
    p(
        11,
        "ivr-invalid",
        Ivr,
        "That is not a valid option.",
        "入力された番号は無効です。",
        "にゅうりょく された ばんごうは むこう です。",
    ),
    p(
        12,
        "ivr-timeout",
        Ivr,
        "We did not receive your selection.",
        "番号が入力されませんでした。",
        "ばんごうが にゅうりょく されません でした。",
    ),
    p(
        13,
        "ivr-try-again",
        Ivr,
        "Please try again.",
        "もう一度入力してください。",
        "もういちど にゅうりょく してください。",
    ),
    p(
        14,
        "ivr-dial-extension",
        Ivr,
        "If you know the extension of the person you are calling, please dial it now.",
        "内線番号がお分かりの場合は、そのままダイヤルしてください。",
        "ないせん ばんごうが おわかりの ばあいは、そのまま だいやる してください。",
    ),
    p(
        15,
        "ivr-operator",
        Ivr,
        "Please hold for the operator.",
        "オペレーターにおつなぎします。",
        "おぺれーたーに おつなぎ します。",
    ),
    // Voicemail: leaving a message.
    p(
        16,
        "vm-leave-message",
        Voicemail,
        "Please leave your message after the tone. When you have finished, hang up or press the pound key.",
        "発信音の後にメッセージをお話しください。終わりましたら、電話を切るか、シャープを押してください。",
        "はっしんおんの あとに めっせーじを おはなし ください。おわりましたら、でんわを きるか、しゃーぷを おしてください。",
    ),
    p(
        17,
        "vm-person-at-ext",
        Voicemail,
        "The person at extension",
        "内線",
        "ないせん",
    ),
    p(
        18,
        "vm-is-busy",
        Voicemail,
        "is on another call.",
        "番の方は、ただいま通話中です。",
        "ばんの かたは、ただいま つうわちゅう です。",
    ),
    p(
        19,
        "vm-is-unavailable",
        Voicemail,
        "is not available.",
        "番の方は、ただいま電話に出ることができません。",
        "ばんの かたは、ただいま でんわに でる ことが できません。",
    ),
    // After the box owner's recorded name (the default greeting of a box with a name greeting).
    p(
        178,
        "vm-name-is-busy",
        Voicemail,
        "is on another call.",
        "は、ただいま通話中です。",
        "わ、ただいま つうわちゅう です。",
    ),
    p(
        179,
        "vm-name-is-unavailable",
        Voicemail,
        "is not available.",
        "は、ただいま電話に出ることができません。",
        "わ、ただいま でんわに でる ことが できません。",
    ),
    p(
        20,
        "vm-mailbox-full",
        Voicemail,
        "This mailbox is full and cannot take any more messages.",
        "このメールボックスはいっぱいのため、メッセージをお預かりできません。",
        "この めーるぼっくすは いっぱいの ため、めっせーじを おあずかり できません。",
    ),
    p(
        21,
        "vm-too-short",
        Voicemail,
        "Your recording was too short and was not kept.",
        "録音が短すぎたため、保存されませんでした。",
        "ろくおんが みじかすぎた ため、ほぞん されません でした。",
    ),
    p(
        22,
        "vm-no-mailbox",
        Voicemail,
        "There is no mailbox at this number.",
        "この番号のメールボックスはありません。",
        "この ばんごうの めーるぼっくすは ありません。",
    ),
    // Voicemail: logging in.
    p(
        23,
        "vm-enter-mailbox",
        Voicemail,
        "Please enter your mailbox number, followed by the pound key.",
        "メールボックス番号を入力し、最後にシャープを押してください。",
        "めーるぼっくす ばんごうを にゅうりょくし、さいごに しゃーぷを おしてください。",
    ),
    p(
        24,
        "vm-enter-pin",
        Voicemail,
        "Please enter your PIN, followed by the pound key.",
        "暗証番号を入力し、最後にシャープを押してください。",
        "あんしょう ばんごうを にゅうりょくし、さいごに しゃーぷを おしてください。",
    ),
    p(
        25,
        "vm-wrong-pin",
        Voicemail,
        "That mailbox number or PIN is not correct.",
        "メールボックス番号または暗証番号が違います。",
        "めーるぼっくす ばんごう または あんしょう ばんごうが ちがいます。",
    ),
    // Voicemail: counts ("You have three new messages").
    p(
        26,
        "vm-you-have",
        Voicemail,
        "You have",
        "メッセージをお知らせします。",
        "めっせーじを おしらせ します。",
    ),
    p(
        27,
        "vm-new-message",
        Voicemail,
        "new message",
        "新しいメッセージが",
        "あたらしい めっせーじが",
    ),
    p(
        28,
        "vm-new-messages",
        Voicemail,
        "new messages",
        "新しいメッセージが",
        "あたらしい めっせーじが",
    ),
    p(
        29,
        "vm-saved-message",
        Voicemail,
        "saved message",
        "保存されたメッセージが",
        "ほぞん された めっせーじが",
    ),
    p(
        30,
        "vm-saved-messages",
        Voicemail,
        "saved messages",
        "保存されたメッセージが",
        "ほぞん された めっせーじが",
    ),
    p(31, "vm-and", Voicemail, "and", "また、", "また、"),
    p(
        32,
        "vm-there-are",
        Voicemail,
        "waiting",
        "あります。",
        "あります。",
    ),
    p(
        33,
        "vm-no-new-messages",
        Voicemail,
        "no new messages",
        "新しいメッセージはありません。",
        "あたらしい めっせーじは ありません。",
    ),
    p(
        34,
        "vm-no-saved-messages",
        Voicemail,
        "no saved messages",
        "保存されたメッセージはありません。",
        "ほぞん された めっせーじは ありません。",
    ),
    // Voicemail: the main menu, one prompt per option.
    p(
        35,
        "vm-menu-new",
        Voicemail,
        "To listen to your new messages, press 1.",
        "新しいメッセージを聞くには、1を押してください。",
        "あたらしい めっせーじを きくには、いちを おしてください。",
    ),
    p(
        36,
        "vm-menu-saved",
        Voicemail,
        "To listen to your saved messages, press 2.",
        "保存されたメッセージを聞くには、2を押してください。",
        "ほぞん された めっせーじを きくには、にを おしてください。",
    ),
    p(
        37,
        "vm-menu-greetings",
        Voicemail,
        "To change your greetings, press 3.",
        "応答メッセージを変更するには、3を押してください。",
        "おうとう めっせーじを へんこう するには、さんを おしてください。",
    ),
    p(
        38,
        "vm-menu-pin",
        Voicemail,
        "To change your PIN, press 4.",
        "暗証番号を変更するには、4を押してください。",
        "あんしょう ばんごうを へんこう するには、よんを おしてください。",
    ),
    p(
        39,
        "vm-menu-exit",
        Voicemail,
        "To end this call, press star.",
        "終了するには、アスタリスクを押してください。",
        "しゅうりょう するには、あすたりすくを おしてください。",
    ),
    // Voicemail: playing a message.
    p(
        40,
        "vm-first-message",
        Voicemail,
        "First message.",
        "最初のメッセージです。",
        "さいしょの めっせーじ です。",
    ),
    p(
        41,
        "vm-next-message",
        Voicemail,
        "Next message.",
        "次のメッセージです。",
        "つぎの めっせーじ です。",
    ),
    p(
        42,
        "vm-received-at",
        Voicemail,
        "Received at",
        "受信時刻は",
        "じゅしん じこくは",
    ),
    p(
        43,
        "vm-from-number",
        Voicemail,
        "From",
        "発信者番号は",
        "はっしんしゃ ばんごうは",
    ),
    p(
        44,
        "vm-no-caller-id",
        Voicemail,
        "The caller's number was not given.",
        "発信者番号は通知されていません。",
        "はっしんしゃ ばんごうは つうち されて いません。",
    ),
    p(
        45,
        "vm-opt-repeat",
        Voicemail,
        "To listen again, press 5.",
        "もう一度聞くには、5を押してください。",
        "もういちど きくには、ごを おしてください。",
    ),
    p(
        46,
        "vm-opt-next",
        Voicemail,
        "For the next message, press 6.",
        "次のメッセージは、6を押してください。",
        "つぎの めっせーじは、ろくを おしてください。",
    ),
    p(
        47,
        "vm-opt-delete",
        Voicemail,
        "To delete this message, press 7.",
        "このメッセージを削除するには、7を押してください。",
        "この めっせーじを さくじょ するには、ななを おしてください。",
    ),
    p(
        48,
        "vm-opt-callback",
        Voicemail,
        "To call back, press 8.",
        "折り返し電話をかけるには、8を押してください。",
        "おりかえし でんわを かけるには、はちを おしてください。",
    ),
    p(
        49,
        "vm-opt-save",
        Voicemail,
        "To save this message, press 9.",
        "このメッセージを保存するには、9を押してください。",
        "この めっせーじを ほぞん するには、きゅうを おしてください。",
    ),
    p(
        50,
        "vm-opt-main-menu",
        Voicemail,
        "For the main menu, press star.",
        "メインメニューに戻るには、アスタリスクを押してください。",
        "めいん めにゅーに もどるには、あすたりすくを おしてください。",
    ),
    p(
        51,
        "vm-message-saved",
        Voicemail,
        "Message saved.",
        "メッセージを保存しました。",
        "めっせーじを ほぞん しました。",
    ),
    p(
        52,
        "vm-message-deleted",
        Voicemail,
        "Message deleted.",
        "メッセージを削除しました。",
        "めっせーじを さくじょ しました。",
    ),
    p(
        53,
        "vm-no-more-messages",
        Voicemail,
        "There are no more messages.",
        "メッセージは以上です。",
        "めっせーじは いじょう です。",
    ),
    p(
        54,
        "vm-calling-back",
        Voicemail,
        "Calling back.",
        "折り返し電話をおかけします。",
        "おりかえし でんわを おかけ します。",
    ),
    // Voicemail: greetings and PIN.
    p(
        55,
        "vm-greeting-menu-unavailable",
        Voicemail,
        "To record your unavailable greeting, press 1.",
        "不在時の応答メッセージを録音するには、1を押してください。",
        "ふざいじの おうとう めっせーじを ろくおん するには、いちを おしてください。",
    ),
    p(
        56,
        "vm-greeting-menu-busy",
        Voicemail,
        "To record your busy greeting, press 2.",
        "通話中の応答メッセージを録音するには、2を押してください。",
        "つうわちゅうの おうとう めっせーじを ろくおん するには、にを おしてください。",
    ),
    p(
        57,
        "vm-greeting-menu-name",
        Voicemail,
        "To record your name, press 3.",
        "お名前を録音するには、3を押してください。",
        "おなまえを ろくおん するには、さんを おしてください。",
    ),
    p(
        58,
        "vm-greeting-record",
        Voicemail,
        "Record after the tone, then press the pound key.",
        "発信音の後に録音し、最後にシャープを押してください。",
        "はっしんおんの あとに ろくおんし、さいごに しゃーぷを おしてください。",
    ),
    p(
        59,
        "vm-greeting-saved",
        Voicemail,
        "Your greeting has been saved.",
        "応答メッセージを保存しました。",
        "おうとう めっせーじを ほぞん しました。",
    ),
    p(
        60,
        "vm-pin-new",
        Voicemail,
        "Please enter your new PIN, followed by the pound key.",
        "新しい暗証番号を入力し、最後にシャープを押してください。",
        "あたらしい あんしょう ばんごうを にゅうりょくし、さいごに しゃーぷを おしてください。",
    ),
    p(
        61,
        "vm-pin-again",
        Voicemail,
        "Please enter the new PIN again.",
        "確認のため、もう一度入力してください。",
        "かくにんの ため、もういちど にゅうりょく してください。",
    ),
    p(
        62,
        "vm-pin-changed",
        Voicemail,
        "Your PIN has been changed.",
        "暗証番号を変更しました。",
        "あんしょう ばんごうを へんこう しました。",
    ),
    p(
        63,
        "vm-pin-mismatch",
        Voicemail,
        "The two PINs did not match.",
        "入力された暗証番号が一致しません。",
        "にゅうりょく された あんしょう ばんごうが いっち しません。",
    ),
    p(
        64,
        "vm-pin-rejected",
        Voicemail,
        "That PIN cannot be used. Please choose another.",
        "その暗証番号は使えません。別の番号を選んでください。",
        "その あんしょう ばんごうは つかえません。べつの ばんごうを えらんで ください。",
    ),
    p(
        65,
        "vm-opt-previous",
        Voicemail,
        "For the previous message, press 4.",
        "前のメッセージを聞くには、4を押してください。",
        "まえの めっせーじを きくには、よんを おしてください。",
    ),
    p(
        66,
        "vm-greeting-review",
        Voicemail,
        "To keep this recording, press 1. To record it again, press 2.",
        "この録音を使うには1を、録音し直すには2を押してください。",
        "この ろくおんを つかうには いちを、ろくおん しなおすには にを おしてください。",
    ),
    p(
        67,
        "vm-no-pin",
        Voicemail,
        "This mailbox has no PIN yet. Please ask your administrator to set one.",
        "このメールボックスには暗証番号が設定されていません。管理者に設定を依頼してください。",
        "この めーるぼっくすには あんしょう ばんごうが せってい されていません。かんりしゃに せっていを いらい してください。",
    ),
    p(
        68,
        "vm-locked",
        Voicemail,
        "This mailbox is locked for a while after too many wrong PINs.",
        "暗証番号の誤りが多すぎるため、このメールボックスはしばらく使えません。",
        "あんしょう ばんごうの あやまりが おおすぎる ため、この めーるぼっくすは しばらく つかえません。",
    ),
    // Conferences.
    p(
        69,
        "conf-enter-pin",
        Conference,
        "Please enter the conference PIN, followed by the pound key.",
        "会議の暗証番号を入力し、最後にシャープを押してください。",
        "かいぎの あんしょう ばんごうを にゅうりょくし、さいごに しゃーぷを おしてください。",
    ),
    p(
        70,
        "conf-wrong-pin",
        Conference,
        "That PIN is not correct.",
        "暗証番号が違います。",
        "あんしょう ばんごうが ちがいます。",
    ),
    p(
        71,
        "conf-joined",
        Conference,
        "You are now in the conference.",
        "会議に参加しました。",
        "かいぎに さんか しました。",
    ),
    p(
        72,
        "conf-only-participant",
        Conference,
        "You are the only participant in this conference.",
        "現在、会議の参加者はあなただけです。",
        "げんざい、かいぎの さんかしゃは あなた だけ です。",
    ),
    p(
        73,
        "conf-muted",
        Conference,
        "You are muted.",
        "マイクをミュートにしました。",
        "まいくを みゅーとに しました。",
    ),
    p(
        74,
        "conf-unmuted",
        Conference,
        "You are no longer muted.",
        "ミュートを解除しました。",
        "みゅーとを かいじょ しました。",
    ),
    p(
        75,
        "conf-left",
        Conference,
        "You have left the conference.",
        "会議から退出しました。",
        "かいぎから たいしゅつ しました。",
    ),
    p(
        76,
        "conf-full",
        Conference,
        "This conference is full.",
        "この会議は満員です。",
        "この かいぎは まんいん です。",
    ),
    // Call park.
    p(
        77,
        "park-parked-on",
        Park,
        "Your call has been parked on slot",
        "通話を保留しました。保留番号は",
        "つうわを ほりゅう しました。ほりゅう ばんごうは",
    ),
    p(
        78,
        "park-slot-empty",
        Park,
        "There is no call parked on that slot.",
        "その番号に保留中の通話はありません。",
        "その ばんごうに ほりゅうちゅうの つうわは ありません。",
    ),
    p(
        79,
        "park-no-free-slot",
        Park,
        "No parking slot is free.",
        "空いている保留番号がありません。",
        "あいている ほりゅう ばんごうが ありません。",
    ),
    // Recording.
    p(
        80,
        "rec-started",
        Recording,
        "Recording started.",
        "録音を開始しました。",
        "ろくおんを かいし しました。",
    ),
    p(
        81,
        "rec-stopped",
        Recording,
        "Recording stopped.",
        "録音を停止しました。",
        "ろくおんを ていし しました。",
    ),
    // Feature codes.
    p(
        82,
        "dnd-on",
        Feature,
        "Do not disturb is on.",
        "応答不可を設定しました。",
        "おうとうふかを せってい しました。",
    ),
    p(
        83,
        "dnd-off",
        Feature,
        "Do not disturb is off.",
        "応答不可を解除しました。",
        "おうとうふかを かいじょ しました。",
    ),
    p(
        84,
        "fwd-on",
        Feature,
        "Call forwarding is on.",
        "転送を設定しました。",
        "てんそうを せってい しました。",
    ),
    p(
        85,
        "fwd-off",
        Feature,
        "Call forwarding is off.",
        "転送を解除しました。",
        "てんそうを かいじょ しました。",
    ),
    p(
        86,
        "fwd-enter-number",
        Feature,
        "Please enter the number to forward to, followed by the pound key.",
        "転送先の番号を入力し、最後にシャープを押してください。",
        "てんそうさきの ばんごうを にゅうりょくし、さいごに しゃーぷを おしてください。",
    ),
    p(
        87,
        "daynight-day",
        Feature,
        "Day mode is on.",
        "昼間モードに切り替えました。",
        "ひるま もーどに きりかえ ました。",
    ),
    p(
        88,
        "daynight-night",
        Feature,
        "Night mode is on.",
        "夜間モードに切り替えました。",
        "やかん もーどに きりかえ ました。",
    ),
    p(
        89,
        "feature-invalid",
        Feature,
        "That feature code is not valid.",
        "この特番は無効です。",
        "この とくばんは むこう です。",
    ),
    p(
        175,
        "prompt-review",
        Feature,
        "To keep this recording, press 1. To record it again, press 2. To cancel, press star.",
        "この録音を使うには1を、録音し直すには2を、取り消すにはアスタリスクを押してください。",
        "この ろくおんを つかうには いちを、ろくおん しなおすには にを、とりけすには あすたりすくを おしてください。",
    ),
    p(
        176,
        "prompt-saved",
        Feature,
        "The new prompt has been saved.",
        "新しいガイダンスを保存しました。",
        "あたらしい がいだんすを ほぞん しました。",
    ),
    p(
        177,
        "prompt-not-saved",
        Feature,
        "The recording could not be saved.",
        "録音を保存できませんでした。",
        "ろくおんを ほぞん できません でした。",
    ),
    // Digits, read one by one (extension numbers, caller numbers).
    p(90, "digit-0", Digit, "zero", "ゼロ", "ぜろ"),
    p(91, "digit-1", Digit, "one", "いち", "いち"),
    p(92, "digit-2", Digit, "two", "に", "にい"),
    p(93, "digit-3", Digit, "three", "さん", "さん"),
    p(94, "digit-4", Digit, "four", "よん", "よん"),
    p(95, "digit-5", Digit, "five", "ご", "ごお"),
    p(96, "digit-6", Digit, "six", "ろく", "ろく"),
    p(97, "digit-7", Digit, "seven", "なな", "なな"),
    p(98, "digit-8", Digit, "eight", "はち", "はち"),
    p(99, "digit-9", Digit, "nine", "きゅう", "きゅう"),
    p(
        100,
        "digit-star",
        Digit,
        "star",
        "アスタリスク",
        "あすたりすく",
    ),
    p(101, "digit-pound", Digit, "pound", "シャープ", "しゃーぷ"),
    // Number words.
    p(102, "num-0", Number, "zero", "ゼロ", "ぜろ"),
    p(103, "num-1", Number, "one", "一", "いち"),
    p(104, "num-2", Number, "two", "二", "に"),
    p(105, "num-3", Number, "three", "三", "さん"),
    p(106, "num-4", Number, "four", "四", "よん"),
    p(107, "num-5", Number, "five", "五", "ご"),
    p(108, "num-6", Number, "six", "六", "ろく"),
    p(109, "num-7", Number, "seven", "七", "なな"),
    p(110, "num-8", Number, "eight", "八", "はち"),
    p(111, "num-9", Number, "nine", "九", "きゅう"),
    p(112, "num-10", Number, "ten", "十", "じゅう"),
    p(113, "num-11", Number, "eleven", "十一", "じゅういち"),
    p(114, "num-12", Number, "twelve", "十二", "じゅうに"),
    p(115, "num-13", Number, "thirteen", "十三", "じゅうさん"),
    p(116, "num-14", Number, "fourteen", "十四", "じゅうよん"),
    p(117, "num-15", Number, "fifteen", "十五", "じゅうご"),
    p(118, "num-16", Number, "sixteen", "十六", "じゅうろく"),
    p(119, "num-17", Number, "seventeen", "十七", "じゅうなな"),
    p(120, "num-18", Number, "eighteen", "十八", "じゅうはち"),
    p(121, "num-19", Number, "nineteen", "十九", "じゅうきゅう"),
    p(122, "num-20", Number, "twenty", "二十", "にじゅう"),
    p(123, "num-30", Number, "thirty", "三十", "さんじゅう"),
    p(124, "num-40", Number, "forty", "四十", "よんじゅう"),
    p(125, "num-50", Number, "fifty", "五十", "ごじゅう"),
    p(126, "num-60", Number, "sixty", "六十", "ろくじゅう"),
    p(127, "num-70", Number, "seventy", "七十", "ななじゅう"),
    p(128, "num-80", Number, "eighty", "八十", "はちじゅう"),
    p(129, "num-90", Number, "ninety", "九十", "きゅうじゅう"),
    p(130, "num-100", Number, "one hundred", "百", "ひゃく"),
    p(131, "num-200", Number, "two hundred", "二百", "にひゃく"),
    p(
        132,
        "num-300",
        Number,
        "three hundred",
        "三百",
        "さんびゃく",
    ),
    p(133, "num-400", Number, "four hundred", "四百", "よんひゃく"),
    p(134, "num-500", Number, "five hundred", "五百", "ごひゃく"),
    p(135, "num-600", Number, "six hundred", "六百", "ろっぴゃく"),
    p(
        136,
        "num-700",
        Number,
        "seven hundred",
        "七百",
        "ななひゃく",
    ),
    p(
        137,
        "num-800",
        Number,
        "eight hundred",
        "八百",
        "はっぴゃく",
    ),
    p(
        138,
        "num-900",
        Number,
        "nine hundred",
        "九百",
        "きゅうひゃく",
    ),
    p(139, "num-1000", Number, "one thousand", "千", "せん"),
    p(140, "num-2000", Number, "two thousand", "二千", "にせん"),
    p(
        141,
        "num-3000",
        Number,
        "three thousand",
        "三千",
        "さんぜん",
    ),
    p(142, "num-4000", Number, "four thousand", "四千", "よんせん"),
    p(143, "num-5000", Number, "five thousand", "五千", "ごせん"),
    p(144, "num-6000", Number, "six thousand", "六千", "ろくせん"),
    p(
        145,
        "num-7000",
        Number,
        "seven thousand",
        "七千",
        "ななせん",
    ),
    p(
        146,
        "num-8000",
        Number,
        "eight thousand",
        "八千",
        "はっせん",
    ),
    p(
        147,
        "num-9000",
        Number,
        "nine thousand",
        "九千",
        "きゅうせん",
    ),
    p(148, "num-thousand", Number, "thousand", "千", "せん"),
    p(149, "num-million", Number, "million", "百万", "ひゃくまん"),
    p(150, "num-billion", Number, "billion", "十億", "じゅうおく"),
    p(151, "num-man", Number, "ten thousand", "万", "まん"),
    p(152, "num-oku", Number, "hundred million", "億", "おく"),
    // Japanese counters: 件 (messages), 番 (slots), 時 and 分 (times), with the forms a number
    // ending in 1, 3, 4, 6, 7, 8, 9, 10 or 100 takes before them. English says the bare number.
    p(153, "ctr-ken", Counter, "items", "件", "けん"),
    p(154, "ken-1", Counter, "one item", "一件", "いっけん"),
    p(155, "ken-6", Counter, "six items", "六件", "ろっけん"),
    p(156, "ken-8", Counter, "eight items", "八件", "はっけん"),
    p(157, "ken-10", Counter, "ten items", "十件", "じゅっけん"),
    p(
        158,
        "ken-100",
        Counter,
        "one hundred items",
        "百件",
        "ひゃっけん",
    ),
    p(159, "ctr-ban", Counter, "number", "番", "ばん"),
    p(160, "ctr-ji", Counter, "o'clock", "時", "じ"),
    p(161, "ji-4", Counter, "four o'clock", "四時", "よじ"),
    p(162, "ji-7", Counter, "seven o'clock", "七時", "しちじ"),
    p(163, "ji-9", Counter, "nine o'clock", "九時", "くじ"),
    p(164, "ctr-fun", Counter, "minutes", "分", "ふん"),
    p(165, "fun-1", Counter, "one minute", "一分", "いっぷん"),
    p(166, "fun-3", Counter, "three minutes", "三分", "さんぷん"),
    p(167, "fun-4", Counter, "four minutes", "四分", "よんぷん"),
    p(168, "fun-6", Counter, "six minutes", "六分", "ろっぷん"),
    p(169, "fun-8", Counter, "eight minutes", "八分", "はっぷん"),
    p(170, "fun-10", Counter, "ten minutes", "十分", "じゅっぷん"),
    // Time of day.
    p(171, "time-am", Time, "A M", "午前", "ごぜん"),
    p(172, "time-pm", Time, "P M", "午後", "ごご"),
    p(173, "time-oclock", Time, "o'clock", "ちょうど", "ちょうど"),
    p(174, "time-oh", Time, "oh", "ゼロ", "ぜろ"),
];

/// The catalogue entry of `id`.
pub fn get(id: &str) -> Option<&'static Prompt> {
    CATALOGUE.iter().find(|p| p.id == id)
}

/// The catalogue entry numbered `number` ([`Prompt::number`]).
pub fn by_number(number: u16) -> Option<&'static Prompt> {
    CATALOGUE.iter().find(|p| p.number == number)
}

/// True when `id` may name a prompt file: 1–64 characters of `a-z`, `0-9` and `-` (no path
/// separators or dots, so an id can never leave its directory).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What is being counted: decides the Japanese counter word (English says the bare number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Messages and other items: 件 (いっけん, ろっけん, はっけん, じゅっけん, ひゃっけん).
    Items,
    /// Numbered slots (park, mailbox positions): 番.
    Slot,
    /// Hours of the clock: 時 (よじ, しちじ, くじ).
    Hour,
    /// Minutes: 分 (いっぷん, さんぷん, よんぷん, ろっぷん, はっぷん, じゅっぷん; others ふん).
    Minute,
}

/// Numbers from this size on are read digit by digit instead.
const MAX_SPOKEN: u64 = 1_000_000_000_000;

const UNITS: [&str; 10] = [
    "num-0", "num-1", "num-2", "num-3", "num-4", "num-5", "num-6", "num-7", "num-8", "num-9",
];
const TEENS: [&str; 10] = [
    "num-10", "num-11", "num-12", "num-13", "num-14", "num-15", "num-16", "num-17", "num-18",
    "num-19",
];
const TENS: [&str; 10] = [
    "", "num-10", "num-20", "num-30", "num-40", "num-50", "num-60", "num-70", "num-80", "num-90",
];
const HUNDREDS: [&str; 10] = [
    "", "num-100", "num-200", "num-300", "num-400", "num-500", "num-600", "num-700", "num-800",
    "num-900",
];
const THOUSANDS: [&str; 10] = [
    "", "num-1000", "num-2000", "num-3000", "num-4000", "num-5000", "num-6000", "num-7000",
    "num-8000", "num-9000",
];
const DIGITS: [&str; 10] = [
    "digit-0", "digit-1", "digit-2", "digit-3", "digit-4", "digit-5", "digit-6", "digit-7",
    "digit-8", "digit-9",
];

/// The prompt ids that say `n` in `lang`.
///
/// English: `21` → `num-20 num-1`, `115` → `num-100 num-15`, `21000` → `num-20 num-1
/// num-thousand`. Japanese groups by 万 and 億 and keeps the sound changes of hundreds and
/// thousands (さんびゃく, はっせん) in one id: `21` → `num-2 num-10 num-1` (に じゅう いち),
/// `300` → `num-300`, `12345` → `num-1 num-man num-2000 num-300 num-4 num-10 num-5`.
/// Numbers of 10¹² and more are read digit by digit.
pub fn number(n: u64, lang: Lang) -> Vec<&'static str> {
    let mut out = Vec::new();
    if n >= MAX_SPOKEN {
        return digits(&n.to_string()).unwrap_or_default();
    }
    if n == 0 {
        out.push(UNITS[0]);
        return out;
    }
    match lang {
        Lang::En => en_number(n, &mut out),
        Lang::Ja => ja_number(n, &mut out),
    }
    out
}

/// English words for 1 ≤ n < 10¹².
fn en_number(n: u64, out: &mut Vec<&'static str>) {
    for (scale, word) in [(1_000_000_000, "num-billion"), (1_000_000, "num-million")] {
        if n >= scale {
            en_number(n / scale, out);
            out.push(word);
            if !n.is_multiple_of(scale) {
                en_number(n % scale, out);
            }
            return;
        }
    }
    if n >= 10_000 {
        en_number(n / 1000, out);
        out.push("num-thousand");
        if !n.is_multiple_of(1000) {
            en_number(n % 1000, out);
        }
        return;
    }
    let n = n as usize;
    if n >= 1000 {
        out.push(THOUSANDS[n / 1000]);
    }
    if n % 1000 >= 100 {
        out.push(HUNDREDS[n % 1000 / 100]);
    }
    let rest = n % 100;
    match rest {
        0 => {}
        1..=9 => out.push(UNITS[rest]),
        10..=19 => out.push(TEENS[rest - 10]),
        _ => {
            out.push(TENS[rest / 10]);
            if !rest.is_multiple_of(10) {
                out.push(UNITS[rest % 10]);
            }
        }
    }
}

/// Japanese words for 1 ≤ n < 10¹² (groups of four digits: 億, 万).
fn ja_number(n: u64, out: &mut Vec<&'static str>) {
    for (scale, word) in [(100_000_000, "num-oku"), (10_000, "num-man")] {
        if n >= scale {
            ja_number(n / scale, out);
            out.push(word);
            if !n.is_multiple_of(scale) {
                ja_number(n % scale, out);
            }
            return;
        }
    }
    let n = n as usize;
    if n >= 1000 {
        out.push(THOUSANDS[n / 1000]);
    }
    if n % 1000 >= 100 {
        out.push(HUNDREDS[n % 1000 / 100]);
    }
    let tens = n % 100 / 10;
    if tens >= 2 {
        out.push(UNITS[tens]);
    }
    if tens >= 1 {
        out.push("num-10");
    }
    if !n.is_multiple_of(10) {
        out.push(UNITS[n % 10]);
    }
}

/// The prompt ids that say "`n` things" in `lang`: in Japanese the number followed by its
/// counter, with the last number word merged into the counter where the sound changes
/// (1件 いっけん, 10分 じゅっぷん, 4時 よじ). In English the bare number.
pub fn count(n: u64, counter: Counter, lang: Lang) -> Vec<&'static str> {
    let mut out = number(n, lang);
    if lang == Lang::En || n >= MAX_SPOKEN {
        return out;
    }
    let (plain, irregular): (&str, &[(&str, &str)]) = match counter {
        Counter::Items => (
            "ctr-ken",
            &[
                ("num-1", "ken-1"),
                ("num-6", "ken-6"),
                ("num-8", "ken-8"),
                ("num-10", "ken-10"),
                ("num-100", "ken-100"),
            ],
        ),
        Counter::Slot => ("ctr-ban", &[]),
        Counter::Hour => (
            "ctr-ji",
            &[("num-4", "ji-4"), ("num-7", "ji-7"), ("num-9", "ji-9")],
        ),
        Counter::Minute => (
            "ctr-fun",
            &[
                ("num-1", "fun-1"),
                ("num-3", "fun-3"),
                ("num-4", "fun-4"),
                ("num-6", "fun-6"),
                ("num-8", "fun-8"),
                ("num-10", "fun-10"),
            ],
        ),
    };
    let last = out.last().copied().unwrap_or_default();
    match irregular.iter().find(|(from, _)| *from == last) {
        Some((_, merged)) => {
            out.pop();
            out.push(merged);
        }
        None => out.push(plain),
    }
    out
}

/// The prompt ids that read `s` digit by digit (`*` and `#` too); `None` when `s` holds anything
/// else or is empty.
pub fn digits(s: &str) -> Option<Vec<&'static str>> {
    if s.is_empty() {
        return None;
    }
    s.chars()
        .map(|c| match c {
            '0'..='9' => Some(DIGITS[(c as u8 - b'0') as usize]),
            '*' => Some("digit-star"),
            '#' => Some("digit-pound"),
            _ => None,
        })
        .collect()
}

/// "You have three new messages and one saved message" / 「メッセージをお知らせします。新しい
/// メッセージが三件あります。また、保存されたメッセージが一件あります。」 Saved messages are
/// mentioned only when there are some.
pub fn message_counts(new: u64, saved: u64, lang: Lang) -> Vec<&'static str> {
    let mut out = vec!["vm-you-have"];
    let part = |n: u64, one: &'static str, many: &'static str, none: &'static str| {
        let mut v = Vec::new();
        match (n, lang) {
            (0, _) => v.push(none),
            (_, Lang::En) => {
                v.extend(number(n, lang));
                v.push(if n == 1 { one } else { many });
            }
            (_, Lang::Ja) => {
                v.push(many);
                v.extend(count(n, Counter::Items, lang));
                v.push("vm-there-are");
            }
        }
        v
    };
    out.extend(part(
        new,
        "vm-new-message",
        "vm-new-messages",
        "vm-no-new-messages",
    ));
    if saved == 0 {
        return out;
    }
    out.push("vm-and");
    out.extend(part(
        saved,
        "vm-saved-message",
        "vm-saved-messages",
        "vm-no-saved-messages",
    ));
    out
}

/// A time of day (`hour` 0–23, `minute` 0–59; larger values wrap): "three fifteen P M",
/// "nine oh five A M", "twelve o'clock P M" / 「午後三時十五分」「午前九時五分」.
pub fn time_of_day(hour: u8, minute: u8, lang: Lang) -> Vec<&'static str> {
    let (hour, minute) = (hour % 24, minute % 60);
    let half = if hour < 12 { "time-am" } else { "time-pm" };
    let h12 = match hour % 12 {
        0 => 12,
        h => h,
    };
    let mut out = Vec::new();
    match lang {
        Lang::En => {
            out.extend(number(u64::from(h12), lang));
            match minute {
                0 => out.push("time-oclock"),
                1..=9 => {
                    out.push("time-oh");
                    out.extend(number(u64::from(minute), lang));
                }
                _ => out.extend(number(u64::from(minute), lang)),
            }
            out.push(half);
        }
        Lang::Ja => {
            out.push(half);
            out.extend(count(u64::from(h12), Counter::Hour, lang));
            if minute == 0 {
                out.push("time-oclock");
            } else {
                out.extend(count(u64::from(minute), Counter::Minute, lang));
            }
        }
    }
    out
}

/// "Your call has been parked on slot seventy one" / 「通話を保留しました。保留番号は七十一番」.
pub fn parked_on(slot: u64, lang: Lang) -> Vec<&'static str> {
    let mut out = vec!["park-parked-on"];
    out.extend(count(slot, Counter::Slot, lang));
    out
}

/// The default voicemail greeting when the owner recorded none: "The person at extension one
/// zero zero one is on another call." / 「内線 いち ゼロ ゼロ いち 番の方は、ただいま通話中です。」
/// `None` when `extension` is not made of digits.
pub fn default_greeting(extension: &str, busy: bool, lang: Lang) -> Option<Vec<&'static str>> {
    let _ = lang; // both languages put the number between the same two prompts
    let mut out = vec!["vm-person-at-ext"];
    out.extend(digits(extension)?);
    out.push(if busy {
        "vm-is-busy"
    } else {
        "vm-is-unavailable"
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn prompt_numbers_are_unique_and_stable() {
        let mut seen = HashSet::new();
        for p in CATALOGUE {
            assert!(p.number > 0, "{} has no number", p.id);
            assert!(seen.insert(p.number), "number {} used twice", p.number);
            assert_eq!(by_number(p.number).map(|q| q.id), Some(p.id));
        }
        // Numbers people may have written down: they never change.
        for (n, id) in [(1, "please-wait"), (2, "goodbye"), (174, "time-oh")] {
            assert_eq!(by_number(n).map(|p| p.id), Some(id), "{n}");
        }
        assert!(by_number(0).is_none());
        assert!(by_number(9999).is_none());
    }

    #[test]
    fn every_prompt_has_both_languages_and_a_unique_valid_id() {
        let mut seen = HashSet::new();
        for p in CATALOGUE {
            assert!(valid_id(p.id), "{}", p.id);
            assert!(seen.insert(p.id), "duplicate id {}", p.id);
            for lang in Lang::ALL {
                assert!(!p.text(lang).trim().is_empty(), "{} {lang}", p.id);
                assert!(!p.spoken(lang).trim().is_empty(), "{} {lang}", p.id);
            }
            // The Japanese voice reads kana only: no kanji may reach it.
            assert!(
                !p.ja_kana
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{} reading has kanji: {}",
                p.id,
                p.ja_kana
            );
            // And no katakana either (espeak-ng 1.51 spells some katakana letter by letter).
            assert!(
                !p.ja_kana
                    .chars()
                    .any(|c| ('\u{30a1}'..='\u{30fa}').contains(&c)),
                "{} reading has katakana: {}",
                p.id,
                p.ja_kana
            );
        }
    }

    #[test]
    fn the_applications_prompts_are_all_there() {
        for id in [
            "ivr-invalid",
            "ivr-timeout",
            "goodbye",
            "transfer-hold",
            "ext-unavailable",
            "ivr-dial-extension",
            "vm-leave-message",
            "vm-is-busy",
            "vm-is-unavailable",
            "vm-enter-mailbox",
            "vm-enter-pin",
            "vm-wrong-pin",
            "vm-received-at",
            "vm-opt-repeat",
            "vm-opt-save",
            "vm-opt-delete",
            "vm-opt-next",
            "vm-opt-callback",
            "vm-greeting-record",
            "vm-pin-new",
            "vm-message-saved",
            "vm-message-deleted",
            "vm-no-more-messages",
            "vm-mailbox-full",
            "vm-too-short",
            "conf-enter-pin",
            "conf-joined",
            "conf-only-participant",
            "conf-muted",
            "conf-unmuted",
            "conf-left",
            "park-parked-on",
            "park-slot-empty",
            "rec-started",
            "rec-stopped",
            "transfer",
            "dnd-on",
            "dnd-off",
            "fwd-on",
            "fwd-off",
            "daynight-day",
            "daynight-night",
            "feature-invalid",
            "not-allowed",
            "all-circuits-busy",
            "please-wait",
        ] {
            assert!(get(id).is_some(), "{id} missing");
        }
    }

    fn all_known(ids: &[&str]) {
        for id in ids {
            assert!(
                get(id).is_some(),
                "composed id {id} is not in the catalogue"
            );
        }
    }

    /// Reads a composition back as Japanese kana, to compare with what a speaker says.
    fn kana(ids: &[&str]) -> String {
        ids.iter()
            .map(|id| get(id).map(|p| p.ja_kana).unwrap_or("?"))
            .collect()
    }

    fn english(ids: &[&str]) -> String {
        ids.iter()
            .map(|id| get(id).map(|p| p.en).unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn english_numbers() {
        let cases: &[(u64, &str)] = &[
            (0, "zero"),
            (7, "seven"),
            (13, "thirteen"),
            (20, "twenty"),
            (21, "twenty one"),
            (100, "one hundred"),
            (115, "one hundred fifteen"),
            (999, "nine hundred ninety nine"),
            (1001, "one thousand one"),
            (7300, "seven thousand three hundred"),
            (21_000, "twenty one thousand"),
            (100_200, "one hundred thousand two hundred"),
            (2_000_005, "two million five"),
            (3_000_000_000, "three billion"),
        ];
        for (n, want) in cases {
            let ids = number(*n, Lang::En);
            all_known(&ids);
            assert_eq!(english(&ids), *want, "{n}");
        }
        assert_eq!(number(21, Lang::En), ["num-20", "num-1"]);
    }

    #[test]
    fn japanese_numbers() {
        let cases: &[(u64, &str)] = &[
            (0, "ぜろ"),
            (1, "いち"),
            (10, "じゅう"),
            (11, "じゅういち"),
            (21, "にじゅういち"),
            (100, "ひゃく"),
            (300, "さんびゃく"),
            (600, "ろっぴゃく"),
            (800, "はっぴゃく"),
            (1000, "せん"),
            (3000, "さんぜん"),
            (8000, "はっせん"),
            (10_000, "いちまん"),
            (12_345, "いちまんにせんさんびゃくよんじゅうご"),
            (100_000_000, "いちおく"),
            (
                123_456_789,
                "いちおくにせんさんびゃくよんじゅうごまんろくせんななひゃくはちじゅうきゅう",
            ),
        ];
        for (n, want) in cases {
            let ids = number(*n, Lang::Ja);
            all_known(&ids);
            assert_eq!(kana(&ids), *want, "{n}");
        }
        assert_eq!(number(21, Lang::Ja), ["num-2", "num-10", "num-1"]);
    }

    #[test]
    fn japanese_counters_take_their_sound_changes() {
        let cases: &[(u64, Counter, &str)] = &[
            (1, Counter::Items, "いっけん"),
            (2, Counter::Items, "にけん"),
            (6, Counter::Items, "ろっけん"),
            (8, Counter::Items, "はっけん"),
            (10, Counter::Items, "じゅっけん"),
            (21, Counter::Items, "にじゅういっけん"),
            (100, Counter::Items, "ひゃっけん"),
            (71, Counter::Slot, "ななじゅういちばん"),
            (4, Counter::Hour, "よじ"),
            (7, Counter::Hour, "しちじ"),
            (9, Counter::Hour, "くじ"),
            (12, Counter::Hour, "じゅうにじ"),
            (1, Counter::Minute, "いっぷん"),
            (3, Counter::Minute, "さんぷん"),
            (5, Counter::Minute, "ごふん"),
            (30, Counter::Minute, "さんじゅっぷん"),
            (45, Counter::Minute, "よんじゅうごふん"),
        ];
        for (n, c, want) in cases {
            let ids = count(*n, *c, Lang::Ja);
            all_known(&ids);
            assert_eq!(kana(&ids), *want, "{n} {c:?}");
        }
        // English says the bare number.
        assert_eq!(count(21, Counter::Items, Lang::En), ["num-20", "num-1"]);
    }

    #[test]
    fn sentences_in_each_language() {
        let en = message_counts(3, 1, Lang::En);
        all_known(&en);
        assert_eq!(
            english(&en),
            "You have three new messages and one saved message"
        );
        let en0 = message_counts(0, 2, Lang::En);
        assert_eq!(
            english(&en0),
            "You have no new messages and two saved messages"
        );
        assert_eq!(
            english(&message_counts(1, 0, Lang::En)),
            "You have one new message"
        );
        assert_eq!(
            kana(&message_counts(0, 0, Lang::Ja)),
            "めっせーじを おしらせ します。あたらしい めっせーじは ありません。"
        );
        let ja = message_counts(3, 1, Lang::Ja);
        all_known(&ja);
        assert_eq!(
            kana(&ja),
            "めっせーじを おしらせ します。あたらしい めっせーじがさんけんあります。また、ほぞん された めっせーじがいっけんあります。"
        );

        let t = time_of_day(15, 15, Lang::En);
        all_known(&t);
        assert_eq!(english(&t), "three fifteen P M");
        assert_eq!(english(&time_of_day(9, 5, Lang::En)), "nine oh five A M");
        assert_eq!(english(&time_of_day(0, 0, Lang::En)), "twelve o'clock A M");
        let tj = time_of_day(16, 10, Lang::Ja);
        all_known(&tj);
        assert_eq!(kana(&tj), "ごごよじじゅっぷん");
        assert_eq!(kana(&time_of_day(9, 0, Lang::Ja)), "ごぜんくじちょうど");

        assert_eq!(
            english(&parked_on(71, Lang::En)),
            "Your call has been parked on slot seventy one"
        );
        assert_eq!(
            kana(&parked_on(71, Lang::Ja)),
            "つうわを ほりゅう しました。ほりゅう ばんごうはななじゅういちばん"
        );

        let g = default_greeting("1001", true, Lang::En).expect("digits");
        all_known(&g);
        assert_eq!(
            english(&g),
            "The person at extension one zero zero one is on another call."
        );
        assert!(default_greeting("10a1", false, Lang::En).is_none());
        assert!(default_greeting("", false, Lang::Ja).is_none());
        assert_eq!(
            digits("1*#"),
            Some(vec!["digit-1", "digit-star", "digit-pound"])
        );
    }

    #[test]
    fn huge_numbers_are_read_digit_by_digit() {
        let ids = number(1_000_000_000_000, Lang::Ja);
        assert_eq!(ids.len(), 13);
        assert_eq!(ids[0], "digit-1");
        assert_eq!(count(u64::MAX, Counter::Items, Lang::Ja).len(), 20);
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("vm-enter-pin"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id("a.b"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"a".repeat(65)));
        assert_eq!("JA".parse::<Lang>(), Ok(Lang::Ja));
        assert_eq!(Lang::from_setting(Some("ja")), Lang::Ja);
        assert_eq!(Lang::from_setting(Some("xx")), Lang::En);
        assert_eq!(Lang::from_setting(None), Lang::En);
        assert!("fr".parse::<Lang>().is_err());
    }
}
