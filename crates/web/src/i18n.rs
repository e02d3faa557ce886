//! English and Japanese text of every page and message, and language negotiation.

/// A language of the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Japanese.
    Ja,
}

impl Lang {
    /// BCP 47 tag.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// The language's own name (for the switch).
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ja => "日本語",
        }
    }

    /// `en`/`ja` (and regional variants such as `ja-JP`).
    pub fn parse(s: &str) -> Option<Lang> {
        let primary = s.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }
}

/// The cookie's choice first, then the best `Accept-Language` entry we speak, then English.
pub fn negotiate(cookie: Option<&str>, accept: Option<&str>) -> Lang {
    if let Some(l) = cookie.and_then(Lang::parse) {
        return l;
    }
    let mut best: Option<(f32, Lang)> = None;
    for part in accept.unwrap_or("").split(',') {
        let mut it = part.split(';');
        let Some(l) = it.next().and_then(Lang::parse) else {
            continue;
        };
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        // Strictly greater keeps the earlier entry on ties, as the header's order intends.
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, l));
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

/// `(key, English, Japanese)`.
const MESSAGES: &[(&str, &str, &str)] = &[
    // ----- licence (issue 16) -----
    ("nav.license", "Licence", "ライセンス"),
    ("nav.cluster", "Cluster", "二重化"),
    ("nav.park", "Call park", "コールパーク"),
    ("park.title", "Call park", "コールパーク"),
    (
        "cluster.title",
        "Cluster (active/standby)",
        "二重化（ACT/SBY）",
    ),
    ("title.license", "Licence", "ライセンス"),
    (
        "err.license",
        "The licence does not allow this.",
        "ライセンスによりこの操作はできません。",
    ),
    (
        "lic.dev_banner",
        "Development licence key accepted (DENWA_LICENSE_DEV=1): licences signed by the public TEST key are in force. Never run a production system like this.",
        "開発用ライセンス鍵を受け入れています（DENWA_LICENSE_DEV=1）：公開されたテスト鍵で署名したライセンスが有効になります。本番環境では絶対に使用しないでください。",
    ),
    (
        "lic.expiring",
        "The licence expires in",
        "ライセンスの有効期限まであと",
    ),
    ("lic.days", "day(s)", "日"),
    (
        "lic.expired",
        "The licence has expired: calls continue, but configuration is read-only until a valid licence is installed.",
        "ライセンスの有効期限が切れました。通話は継続しますが、有効なライセンスをインストールするまで設定は変更できません。",
    ),
    (
        "lic.free",
        "No licence installed: running on the free allowance.",
        "ライセンス未インストール：無償枠で動作しています。",
    ),
    (
        "lic.problem",
        "The installed licence is not in force; running on the free allowance:",
        "インストール済みのライセンスは無効のため、無償枠で動作しています：",
    ),
    (
        "lic.node_id",
        "Node ID (send it to the vendor)",
        "ノード ID（販売元へお知らせください）",
    ),
    ("lic.summary", "In force", "適用中"),
    ("lic.id", "Licence ID", "ライセンス ID"),
    ("lic.customer", "Customer", "顧客"),
    ("lic.valid", "Valid", "有効期間"),
    ("lic.status", "Status", "状態"),
    ("lic.key", "Signing key", "署名鍵"),
    (
        "lic.test_key",
        "TEST key (dev mode)",
        "テスト鍵（開発モード）",
    ),
    ("lic.topology", "Topology", "構成"),
    (
        "lic.limits",
        "Limits (in use / allowed)",
        "上限（使用中 / 許可数）",
    ),
    ("lic.extensions", "Extensions", "内線数"),
    ("lic.calls", "Simultaneous calls", "同時通話数"),
    ("lic.tenants", "Tenants", "テナント数"),
    ("lic.trunks", "Trunks", "トランク数"),
    (
        "lic.install",
        "Install a licence",
        "ライセンスをインストール",
    ),
    (
        "lic.install_note",
        "Choose the licence file from the vendor, or paste its text. It is checked first (signature, validity, this node); a refused file changes nothing. A new licence applies at once.",
        "販売元から届いたライセンスファイルを選ぶか、内容を貼り付けてください。署名・有効期間・ノードを確認し、受け付けられないファイルでは何も変わりません。新しいライセンスはすぐに反映されます。",
    ),
    (
        "lic.installed",
        "Licence installed:",
        "ライセンスをインストールしました：",
    ),
    (
        "lic.refused",
        "The licence was refused; nothing changed:",
        "ライセンスを受け付けませんでした（変更なし）：",
    ),
    // ----- end licence -----
    ("nav.dashboard", "Dashboard", "ダッシュボード"),
    ("nav.extensions", "Extensions", "内線"),
    ("nav.calls", "Calls in progress", "通話中"),
    ("nav.history", "Call history", "通話履歴"),
    ("nav.settings", "Settings", "設定"),
    ("nav.backup", "Backup", "バックアップ"),
    ("nav.backup_server", "Backup server", "バックアップサーバー"),
    ("nav.admins", "Administrators", "管理者"),
    ("nav.logout", "Sign out", "サインアウト"),
    ("title.dashboard", "Dashboard", "ダッシュボード"),
    ("title.extensions", "Extensions", "内線"),
    ("title.extension", "Extension", "内線の詳細"),
    ("title.calls", "Calls in progress", "通話中の呼"),
    ("title.history", "Call history", "通話履歴"),
    ("title.settings", "Settings", "設定"),
    ("title.backup", "Backup and restore", "バックアップと復元"),
    (
        "title.admins",
        "Administrators and API keys",
        "管理者と API キー",
    ),
    ("title.login", "Sign in", "サインイン"),
    ("title.setup", "First-time setup", "初期設定"),
    ("title.error", "Error", "エラー"),
    ("role.admin", "administrator", "管理者"),
    (
        "role.viewer",
        "viewer (read-only)",
        "閲覧者（読み取り専用）",
    ),
    ("login.username", "User name", "ユーザー名"),
    ("login.password", "Password", "パスワード"),
    ("login.submit", "Sign in", "サインイン"),
    (
        "login.hint",
        "No account yet? Use the setup link printed by `denwa serve`, or run `denwa admin add`.",
        "アカウントがない場合は、`denwa serve` が表示するセットアップ用リンクを使うか、`denwa admin add` を実行してください。",
    ),
    (
        "login.bad",
        "Wrong user name or password.",
        "ユーザー名またはパスワードが違います。",
    ),
    (
        "login.locked",
        "Too many failed attempts. This account is locked until",
        "失敗が続いたため、このアカウントは次の時刻までロックされています：",
    ),
    (
        "setup.intro",
        "No administrator exists yet. Create the first one.",
        "管理者がまだいません。最初の管理者を作成してください。",
    ),
    ("setup.password2", "Password (again)", "パスワード（確認）"),
    ("setup.submit", "Create administrator", "管理者を作成"),
    (
        "setup.invalid",
        "This setup link is invalid or has already been used.",
        "このセットアップ用リンクは無効か、すでに使われています。",
    ),
    (
        "setup.mismatch",
        "The two passwords differ.",
        "2 つのパスワードが一致しません。",
    ),
    (
        "admin.bad_name",
        "User name: 1 to 64 of letters, digits and . _ - @",
        "ユーザー名は英数字と . _ - @ の 1〜64 文字にしてください",
    ),
    (
        "admin.short_password",
        "Administrator passwords need at least 10 characters.",
        "管理者のパスワードは 10 文字以上にしてください。",
    ),
    (
        "admin.duplicate",
        "An administrator with this name already exists.",
        "同じ名前の管理者がすでに存在します。",
    ),
    (
        "admin.self",
        "You cannot delete your own account.",
        "自分自身のアカウントは削除できません。",
    ),
    ("admin.new", "New administrator", "管理者を追加"),
    ("admin.role", "Role", "権限"),
    ("admin.locked", "Locked until", "ロック期限"),
    ("account.title", "My password", "自分のパスワード"),
    ("account.current", "Current password", "現在のパスワード"),
    (
        "account.wrong",
        "The current password is wrong.",
        "現在のパスワードが違います。",
    ),
    (
        "account.changed",
        "Your password was changed.",
        "パスワードを変更しました。",
    ),
    ("keys.title", "API keys", "API キー"),
    ("keys.name", "Name", "名前"),
    ("keys.prefix", "Key", "キー"),
    ("keys.scope", "Scope", "範囲"),
    ("keys.read", "read-only", "読み取り専用"),
    ("keys.full", "full", "フルアクセス"),
    ("keys.last_used", "Last used", "最終使用"),
    (
        "keys.once",
        "Copy this key now: it is shown only once.",
        "このキーを今すぐコピーしてください。表示はこの 1 回だけです。",
    ),
    (
        "keys.bad_name",
        "Name: 1 to 64 characters.",
        "名前は 1〜64 文字にしてください。",
    ),
    ("err.not_found", "Not found.", "見つかりません。"),
    ("err.conflict", "It already exists.", "すでに存在します。"),
    (
        "err.invalid",
        "The input is not valid.",
        "入力が正しくありません。",
    ),
    (
        "err.backup_rejected",
        "The backup file was refused; nothing was changed.",
        "バックアップファイルは受け付けられませんでした。何も変更していません。",
    ),
    (
        "err.unavailable",
        "The database is unavailable.",
        "データベースに接続できません。",
    ),
    (
        "err.internal",
        "Internal error.",
        "内部エラーが発生しました。",
    ),
    (
        "err.csrf",
        "The form expired or did not come from this panel. Reload the page and try again.",
        "フォームの有効期限が切れたか、この管理画面から送信されたものではありません。ページを再読み込みしてやり直してください。",
    ),
    (
        "err.viewer",
        "Your account is read-only.",
        "このアカウントは読み取り専用です。",
    ),
    ("dash.calls", "Calls in progress", "通話中"),
    ("dash.today", "Today's calls", "本日の通話"),
    ("dash.phones", "Registered phones", "登録中の電話機"),
    (
        "dash.no_phones",
        "No phone is registered.",
        "登録中の電話機はありません。",
    ),
    ("dash.node", "Node status", "ノードの状態"),
    ("node.name", "Node", "ノード"),
    ("node.version", "Version", "バージョン"),
    ("node.uptime", "Uptime", "稼働時間"),
    ("node.sip", "SIP listen addresses", "SIP 待受アドレス"),
    ("node.http", "HTTP listen address", "HTTP 待受アドレス"),
    ("node.rtp", "RTP port range", "RTP ポート範囲"),
    ("node.advertise", "Advertised address", "通知アドレス"),
    ("node.log", "Log level", "ログレベル"),
    ("node.database", "Database", "データベース"),
    (
        "calls.none",
        "No call in progress.",
        "通話中の呼はありません。",
    ),
    ("calls.caller", "Caller", "発信者"),
    ("calls.callee", "Callee", "着信先"),
    ("calls.state", "State", "状態"),
    ("calls.duration", "Duration", "通話時間"),
    ("calls.codec", "Codec", "コーデック"),
    ("calls.ringing", "ringing", "呼出中"),
    ("calls.up", "connected", "通話中"),
    ("calls.hangup", "Hang up", "切断"),
    ("calls.transfer", "Transfer", "転送"),
    ("title.call_events", "Call events", "通話イベント"),
    (
        "hist.no_events",
        "No transfer or pickup in this call.",
        "この通話に転送・ピックアップはありません。",
    ),
    ("hist.ev_time", "Time", "時刻"),
    ("hist.ev_kind", "Event", "イベント"),
    ("hist.ev_by", "By", "操作者"),
    ("hist.ev_party", "Party", "対象"),
    ("hist.ev_to", "To", "転送先"),
    ("hist.ev_status", "Result", "結果"),
    ("ev.blind", "blind transfer", "ブラインド転送"),
    ("ev.attended", "attended transfer", "アテンド転送"),
    ("ev.failed", "transfer failed", "転送失敗"),
    ("ev.callback", "called back", "コールバック"),
    ("ev.replaces", "taken over", "引き継ぎ"),
    ("ev.pickup", "picked up", "ピックアップ"),
    ("calls.transfer_to", "to number", "転送先番号"),
    (
        "calls.transfer_refused",
        "Transfer refused:",
        "転送できません:",
    ),
    (
        "calls.gone",
        "That call has already ended.",
        "その通話はすでに終了しています。",
    ),
    ("disp.answered", "Answered", "応答"),
    ("disp.no_answer", "No answer", "不応答"),
    ("disp.busy", "Busy", "話中"),
    ("disp.failed", "Failed", "失敗"),
    ("disp.canceled", "Canceled", "取消"),
    ("ext.number", "Number", "内線番号"),
    ("ext.name", "Display name", "表示名"),
    ("ext.enabled", "Enabled", "有効"),
    ("ext.state", "Registration", "登録状態"),
    ("ext.registered", "registered", "登録中"),
    ("ext.unregistered", "not registered", "未登録"),
    ("ext.none", "No extensions.", "内線はありません。"),
    ("ext.search", "Number or name", "番号または名前"),
    ("ext.new", "New extension", "内線を追加"),
    ("ext.password", "SIP password", "SIP パスワード"),
    (
        "ext.password_auto",
        "leave empty to generate one",
        "空欄なら自動生成",
    ),
    ("ext.create", "Create", "作成"),
    ("ext.created", "Extension created.", "内線を作成しました。"),
    ("ext.deleted", "Extension deleted:", "内線を削除しました："),
    (
        "ext.password_once",
        "The SIP password is shown only now. Write it down or set it in the phone.",
        "SIP パスワードは今回だけ表示されます。控えるか電話機に設定してください。",
    ),
    ("ext.regenerate", "New password", "パスワードを再発行"),
    ("ext.delete", "Delete extension", "内線を削除"),
    (
        "ext.max_contacts",
        "Max. registered devices",
        "最大登録台数",
    ),
    ("ext.registrations", "Registered devices", "登録中の端末"),
    (
        "ext.bad_number",
        "Extension number: use 1 to 32 of the characters 0-9 * # +.",
        "内線番号は 0-9 * # + の 1〜32 文字にしてください。",
    ),
    (
        "ext.bad_name",
        "Display name: at most 64 characters, no control characters.",
        "表示名は制御文字を含まない 64 文字以内にしてください。",
    ),
    (
        "ext.bad_max",
        "Max. registered devices: a number from 1 to 100.",
        "最大登録台数は 1〜100 の数値にしてください。",
    ),
    (
        "ext.duplicate",
        "This extension number already exists.",
        "この内線番号はすでに存在します。",
    ),
    ("ext.weak", "Weak password:", "弱いパスワード："),
    (
        "pw.short",
        "at least 8 characters.",
        "8 文字以上にしてください。",
    ),
    (
        "pw.chars",
        "printable ASCII characters without spaces only.",
        "空白を含まない半角英数記号にしてください。",
    ),
    (
        "pw.long",
        "at most 128 characters.",
        "128 文字以内にしてください。",
    ),
    (
        "pw.number",
        "it must not contain the extension number.",
        "内線番号を含めないでください。",
    ),
    (
        "pw.classes",
        "mix at least two of lower case, upper case, digits and symbols.",
        "小文字・大文字・数字・記号のうち 2 種類以上を混ぜてください。",
    ),
    ("reg.contact", "Contact", "コンタクト"),
    ("reg.ua", "User agent", "ユーザーエージェント"),
    ("reg.source", "Source address", "送信元アドレス"),
    ("reg.expires", "Expires (UTC)", "有効期限 (UTC)"),
    ("hist.from", "From", "開始日"),
    ("hist.to", "To", "終了日"),
    ("hist.number", "Number", "番号"),
    ("hist.disposition", "Result", "結果"),
    ("hist.any", "any", "すべて"),
    ("hist.csv", "Download CSV", "CSV をダウンロード"),
    ("hist.start", "Start (UTC)", "開始 (UTC)"),
    ("hist.billsec", "Talk time (s)", "通話秒数"),
    // ----- outside lines: trunks, routes, DIDs, outbound policy -----
    ("nav.trunks", "Trunks", "外線トランク"),
    ("nav.routes", "Outbound routes", "発信ルート"),
    ("nav.dids", "Inbound routes", "着信ルート(DID)"),
    ("nav.outbound", "Outbound policy", "発信ポリシー"),
    ("title.trunks", "Trunks", "外線トランク"),
    ("title.trunk", "Trunk", "外線トランクの編集"),
    ("title.trunk_new", "Add a trunk", "外線トランクを追加"),
    ("title.routes", "Outbound routes", "発信ルート"),
    ("title.route", "Outbound route", "発信ルートの編集"),
    (
        "title.route_new",
        "Add an outbound route",
        "発信ルートを追加",
    ),
    ("title.dids", "Inbound routes (DIDs)", "着信ルート(DID)"),
    ("title.did", "Inbound route", "着信ルートの編集"),
    ("title.did_new", "Add an inbound route", "着信ルートを追加"),
    ("title.outbound", "Outbound policy", "発信ポリシー"),
    (
        "out.bad_number",
        "Enter a whole number.",
        "整数を入力してください。",
    ),
    (
        "trunk.none",
        "No trunks yet.",
        "外線トランクはまだありません。",
    ),
    ("trunk.add", "Add a trunk", "外線トランクを追加"),
    (
        "trunk.created",
        "Trunk added.",
        "外線トランクを追加しました。",
    ),
    (
        "trunk.deleted",
        "Trunk deleted.",
        "外線トランクを削除しました。",
    ),
    ("trunk.name", "Name", "名前"),
    ("trunk.host", "Provider host", "接続先ホスト"),
    ("trunk.port", "Port", "ポート"),
    ("trunk.port_auto", "SRV or 5060", "SRV または 5060"),
    ("trunk.transport", "Transport", "トランスポート"),
    ("trunk.kind", "Type", "種別"),
    ("trunk.kind.register", "registration", "登録型"),
    ("trunk.kind.ip", "IP trunk", "IP 接続型"),
    (
        "trunk.register",
        "Register to the provider",
        "事業者へ REGISTER する",
    ),
    ("trunk.enabled", "Enabled", "有効"),
    ("trunk.disabled", "disabled", "無効"),
    ("trunk.group.basic", "Basic", "基本設定"),
    ("trunk.group.auth", "Authentication", "認証"),
    ("trunk.group.cid", "Caller ID", "発信者番号"),
    ("trunk.group.advanced", "Advanced", "詳細設定"),
    (
        "trunk.username",
        "Account (user name)",
        "アカウント(ユーザー名)",
    ),
    (
        "trunk.auth_username",
        "Authentication user (if different)",
        "認証ユーザー名(異なる場合)",
    ),
    ("trunk.password", "Password", "パスワード"),
    (
        "trunk.password_keep",
        "unchanged (leave empty)",
        "変更しない場合は空欄",
    ),
    (
        "trunk.password_needed",
        "A registration trunk needs the account's password.",
        "登録型トランクにはアカウントのパスワードが必要です。",
    ),
    ("trunk.from_user", "From user", "From ユーザー"),
    ("trunk.from_domain", "From domain", "From ドメイン"),
    ("trunk.identity", "Caller ID header", "発信者番号ヘッダー"),
    ("trunk.did_from", "DID taken from", "着信番号(DID)の取得元"),
    (
        "trunk.outbound_proxy",
        "Outbound proxy",
        "アウトバウンドプロキシ",
    ),
    ("trunk.codecs", "Codecs (in order)", "コーデック(優先順)"),
    ("trunk.dtmf", "DTMF", "DTMF 方式"),
    (
        "trunk.max_calls",
        "Most calls at once (0: no limit)",
        "最大同時通話数(0: 無制限)",
    ),
    (
        "trunk.ping_interval",
        "OPTIONS check every (s, 0: off)",
        "OPTIONS 死活監視間隔(秒、0: 無効)",
    ),
    (
        "trunk.expires",
        "Registration interval (s)",
        "登録更新間隔(秒)",
    ),
    (
        "trunk.inbound_addrs",
        "More source addresses (IP or CIDR, one per line)",
        "追加の送信元アドレス(IP または CIDR、1 行に 1 つ)",
    ),
    ("trunk.registration", "Registration", "登録状態"),
    ("trunk.reg.registered", "registered", "登録済み"),
    ("trunk.reg.registering", "registering", "登録中"),
    ("trunk.reg.failing", "failing", "登録失敗"),
    ("trunk.reg.unregistered", "not registered", "未登録"),
    ("trunk.reg.off", "no registration", "登録なし"),
    ("trunk.last_answer", "last answer", "最終応答"),
    ("trunk.next_retry", "next retry", "次回再試行"),
    ("trunk.health", "Health", "死活状態"),
    ("trunk.health.up", "up", "正常"),
    ("trunk.health.down", "down", "応答なし"),
    ("trunk.health.unknown", "unknown", "不明"),
    ("trunk.health.off", "not checked", "監視なし"),
    ("trunk.state", "State", "状態"),
    ("trunk.calls", "Calls", "通話数"),
    (
        "route.intro",
        "Routes are tried from the top; the first whose pattern matches the dialled number and whose class the caller has carries the call.",
        "発信ルートは上から順に照合され、ダイヤルされた番号がパターンに一致し、発信者の規制クラスで利用できる最初のルートで発信します。",
    ),
    (
        "route.none",
        "No outbound routes yet.",
        "発信ルートはまだありません。",
    ),
    ("route.add", "Add an outbound route", "発信ルートを追加"),
    (
        "route.created",
        "Outbound route added.",
        "発信ルートを追加しました。",
    ),
    (
        "route.deleted",
        "Outbound route deleted.",
        "発信ルートを削除しました。",
    ),
    ("route.name", "Name", "名前"),
    ("route.position", "Position (1 = first)", "順位(1 = 最優先)"),
    (
        "route.patterns",
        "Dial patterns (one per line)",
        "ダイヤルパターン(1 行に 1 つ)",
    ),
    (
        "route.trunks",
        "Trunks, in the order tried",
        "使用する外線トランク(試行順)",
    ),
    (
        "route.need_trunk",
        "Add a trunk first.",
        "先に外線トランクを追加してください。",
    ),
    ("route.strip", "Strip digits", "先頭削除桁数"),
    ("route.prepend", "Prepend", "先頭付加番号"),
    ("route.class", "Class of service needed", "必要な規制クラス"),
    ("route.caller_id", "Caller ID", "発信者番号"),
    (
        "route.emergency",
        "Emergency route (emergency calls go out here first)",
        "緊急通報ルート(緊急通報を優先して発信)",
    ),
    ("route.emergency_badge", "emergency", "緊急通報"),
    ("route.enabled", "Enabled", "有効"),
    ("route.up", "Move up", "上へ移動"),
    ("route.down", "Move down", "下へ移動"),
    ("cos.internal", "internal only", "内線のみ"),
    ("cos.local", "local", "市内"),
    ("cos.national", "national", "国内(市外)"),
    ("cos.mobile", "mobile", "携帯電話"),
    ("cos.international", "international", "国際"),
    (
        "did.none",
        "No inbound routes yet.",
        "着信ルートはまだありません。",
    ),
    ("did.add", "Add an inbound route", "着信ルートを追加"),
    ("nav.ivrs", "IVR menus", "IVR(自動音声応答)"),
    ("nav.conferences", "Conferences", "会議室"),
    ("nav.groups", "Ring groups", "着信グループ"),
    ("title.groups", "Ring groups", "着信グループ"),
    ("nav.pages", "Paging", "一斉放送"),
    ("title.pages", "Page groups", "一斉放送グループ"),
    ("title.forwarding", "Forwarding and DND", "転送と着信拒否"),
    ("nav.timeconds", "Day/night", "昼夜切替"),
    ("nav.features", "Feature codes", "特番"),
    ("nav.voicemail", "Voicemail", "留守番電話"),
    ("title.voicemail", "Voicemail", "留守番電話"),
    ("vm.none", "No extensions yet.", "内線がまだありません。"),
    ("vm.box", "Mailbox", "メールボックス"),
    ("vm.new", "New", "新着"),
    ("vm.saved", "Saved", "保存済み"),
    ("vm.pin", "PIN", "暗証番号"),
    ("vm.no_pin", "none", "なし"),
    (
        "vm.no_pin_long",
        "none — the mailbox cannot be entered by phone until one is set",
        "なし（設定するまで電話からは利用できません）",
    ),
    ("vm.email", "E-mail", "メールアドレス"),
    ("vm.messages", "Messages", "メッセージ"),
    ("vm.no_messages", "No messages.", "メッセージはありません。"),
    ("vm.folder", "Folder", "フォルダ"),
    ("vm.left_at", "Left at", "録音日時"),
    ("vm.caller", "Caller", "発信者"),
    ("vm.seconds", "Seconds", "秒"),
    ("vm.download", "Download", "ダウンロード"),
    ("vm.mark_read", "Mark read", "既読にする"),
    ("vm.mail", "E-mail delivery", "メール送信状況"),
    ("vm.settings", "Settings", "設定"),
    (
        "vm.enabled",
        "Callers may leave messages",
        "メッセージの録音を受け付ける",
    ),
    (
        "vm.attach",
        "Attach the recording to the e-mail",
        "録音をメールに添付する",
    ),
    (
        "vm.delete_after_mail",
        "Delete a message once it is mailed",
        "メール送信後にメッセージを削除する",
    ),
    (
        "vm.max_message_s",
        "Longest message (seconds, 10-600)",
        "最大録音時間（秒、10〜600）",
    ),
    (
        "vm.skip_pin",
        "The owner's own phones enter without the PIN",
        "本人の電話からは暗証番号なしで聞ける",
    ),
    (
        "vm.new_pin",
        "New PIN (4-12 digits)",
        "新しい暗証番号（4〜12 桁）",
    ),
    ("vm.clear_pin", "Remove the PIN", "暗証番号を削除"),
    (
        "vm.saved_settings",
        "Mailbox settings saved.",
        "メールボックスの設定を保存しました。",
    ),
    ("vm.pin_set", "PIN set.", "暗証番号を設定しました。"),
    ("vm.pin_cleared", "PIN removed.", "暗証番号を削除しました。"),
    (
        "vm.deleted",
        "Message deleted.",
        "メッセージを削除しました。",
    ),
    ("title.conferences", "Conference rooms", "電話会議室"),
    (
        "conf.none",
        "No conference rooms yet.",
        "会議室はまだありません。",
    ),
    ("conf.number", "Number", "番号"),
    ("conf.name", "Name", "名前"),
    ("conf.pin", "PIN", "暗証番号(PIN)"),
    ("conf.max", "Most participants", "最大参加者数"),
    (
        "conf.join_muted",
        "Participants join muted",
        "参加時にミュートする",
    ),
    ("conf.participants", "Participants now", "現在の参加者"),
    ("conf.empty", "Nobody", "なし"),
    ("conf.mute", "Mute", "ミュート"),
    ("conf.unmute", "Unmute", "ミュート解除"),
    ("conf.muted", "Muted.", "ミュートしました。"),
    ("conf.unmuted", "Unmuted.", "ミュートを解除しました。"),
    (
        "conf.gone",
        "That participant has left.",
        "その参加者はすでに退出しています。",
    ),
    ("conf.kick", "Drop", "退出させる"),
    (
        "conf.kicked",
        "Participant dropped from the room.",
        "参加者を会議室から退出させました。",
    ),
    ("conf.is_muted", "muted", "ミュート中"),
    ("conf.add", "Add a conference room", "会議室を追加"),
    (
        "conf.created",
        "Conference room created.",
        "会議室を追加しました。",
    ),
    (
        "conf.deleted",
        "Conference room deleted.",
        "会議室を削除しました。",
    ),
    ("title.ivrs", "IVR menus", "IVR(自動音声応答)メニュー"),
    ("title.ivr", "IVR menu", "IVRメニュー"),
    ("title.ivr_new", "New IVR menu", "IVRメニューの追加"),
    (
        "ivr.none",
        "No IVR menus yet.",
        "IVRメニューはまだありません。",
    ),
    ("ivr.add", "Add an IVR menu", "IVRメニューを追加"),
    (
        "ivr.created",
        "IVR menu created.",
        "IVRメニューを追加しました。",
    ),
    (
        "ivr.deleted",
        "IVR menu deleted.",
        "IVRメニューを削除しました。",
    ),
    ("ivr.name", "Name", "名前"),
    ("ivr.number", "Internal number", "内線番号"),
    ("ivr.greeting", "Greeting prompt", "案内ガイダンス"),
    (
        "ivr.options",
        "Options (one per line: digit=destination)",
        "選択肢(1行に1つ: 数字=宛先)",
    ),
    (
        "ivr.option_syntax",
        "write each option as digit=destination",
        "選択肢は「数字=宛先」の形で書いてください",
    ),
    (
        "ivr.dial_by_extension",
        "Dial by extension number",
        "内線番号の直接ダイヤル",
    ),
    (
        "ivr.timeout",
        "Seconds to wait for a choice",
        "選択を待つ秒数",
    ),
    (
        "ivr.digit_timeout",
        "Seconds between digits of an extension",
        "内線番号の桁間の秒数",
    ),
    (
        "ivr.retries",
        "Replays after no or invalid choice",
        "未選択・誤選択時の再案内回数",
    ),
    ("ivr.fallback", "Then go to", "その後の宛先"),
    (
        "ivr.announce_transfer",
        "Say \"please hold\" before ringing an extension",
        "内線を呼び出す前に「そのままお待ちください」と案内する",
    ),
    ("ivr.description", "Note", "メモ"),
    ("ivr.no_choice", "No or invalid choice", "未選択・誤選択"),
    (
        "ivr.hint",
        "Destinations: ext:1001, ivr:NAME (a nested menu), hangup. A DID reaches a menu when its destination is ivr:NAME.",
        "宛先: ext:1001、ivr:名前(下位メニュー)、hangup。着信ルートの宛先を ivr:名前 にするとDIDからメニューにつながります。",
    ),
    (
        "did.created",
        "Inbound route added.",
        "着信ルートを追加しました。",
    ),
    (
        "did.deleted",
        "Inbound route deleted.",
        "着信ルートを削除しました。",
    ),
    (
        "did.pattern",
        "DID (number, pattern or any)",
        "着信番号(DID・パターン・any)",
    ),
    ("did.destination", "Destination", "着信先"),
    ("did.trunk", "From trunk", "着信トランク"),
    ("did.any_trunk", "any trunk", "すべてのトランク"),
    ("did.description", "Note", "メモ"),
    ("did.catch_all", "any (catch-all)", "any(その他すべて)"),
    (
        "did.hint",
        "Exact numbers are matched first, then patterns, then the catch-all. Destinations: ext:1001, group:NAME, ivr:NAME, vm:1001, timecond:NAME, hangup.",
        "完全一致の番号、パターン、その他すべて(any)の順に照合します。着信先の書式: ext:1001、group:名前、ivr:名前、vm:1001、timecond:名前、hangup。",
    ),
    (
        "policy.main_number",
        "Main number (caller ID by default)",
        "代表番号(既定の発信者番号)",
    ),
    ("policy.emergency", "Emergency numbers", "緊急通報番号"),
    (
        "policy.limits",
        "Limits for the whole company",
        "会社全体の発信制限",
    ),
    (
        "policy.hint",
        "Emergency numbers are always routed, whatever the class of service. Limits stop toll fraud: calls beyond them are refused and counted.",
        "緊急通報番号は規制クラスに関係なく常に発信できます。発信制限は不正利用(トール詐欺)を防ぐもので、超過した発信は拒否され、件数が記録されます。",
    ),
    (
        "limits.concurrent",
        "Outside calls at once",
        "同時外線発信数",
    ),
    (
        "limits.per_hour",
        "Outside calls per hour",
        "1 時間あたりの外線発信数",
    ),
    (
        "limits.intl_minutes",
        "International minutes per day",
        "1 日あたりの国際通話(分)",
    ),
    ("ext.outside", "Outside calls", "外線発信"),
    ("ext.cos", "Class of service", "規制クラス"),
    ("ext.outbound_cid", "Outbound caller ID", "外線発信者番号"),
    ("ext.cid_main", "the main number", "代表番号"),
    (
        "ext.anonymous",
        "Withhold caller ID (anonymous)",
        "非通知で発信",
    ),
    (
        "dash.fraud_blocked",
        "Outside calls refused by toll-fraud limits",
        "発信制限により拒否した外線発信",
    ),
    ("hist.direction", "Direction", "方向"),
    ("hist.trunk", "Trunk", "トランク"),
    ("hist.did", "DID", "着信番号(DID)"),
    ("dir.internal", "internal", "内線"),
    ("dir.inbound", "inbound", "着信"),
    ("dir.outbound", "outbound", "発信"),
    // ----- end of outside lines -----
    (
        "hist.bad_filter",
        "The filter is not valid.",
        "検索条件が正しくありません。",
    ),
    (
        "set.no_answer",
        "No-answer timeout (seconds)",
        "無応答タイムアウト（秒）",
    ),
    (
        "set.min_expires",
        "Shortest registration interval (seconds)",
        "最短登録間隔（秒）",
    ),
    (
        "set.max_expires",
        "Longest registration interval (seconds)",
        "最長登録間隔（秒）",
    ),
    (
        "set.default_expires",
        "Default registration interval (seconds)",
        "既定の登録間隔（秒）",
    ),
    (
        "set.keepalive",
        "NAT keep-alive interval (seconds, 0 = off)",
        "NAT キープアライブ間隔（秒、0 で無効）",
    ),
    (
        "set.media_timeout",
        "Media timeout (seconds without RTP)",
        "メディアタイムアウト（RTP 無受信の秒数）",
    ),
    (
        "set.digest",
        "Digest algorithms (MD5, SHA-256)",
        "ダイジェスト認証方式（MD5, SHA-256）",
    ),
    ("set.live", "applies at once", "すぐに反映"),
    ("set.restart", "applies after a restart", "再起動後に反映"),
    (
        "set.errors",
        "Nothing was saved: fix the marked fields.",
        "保存していません。印の付いた項目を修正してください。",
    ),
    ("set.range", "Allowed range:", "許容範囲："),
    (
        "set.node_sip",
        "SIP listen addresses (one per network segment)",
        "SIP 待ち受けアドレス（ネットワークセグメントごと）",
    ),
    (
        "set.node_advertise",
        "Advertised (public) address behind NAT",
        "NAT 越しに通知する（公開）アドレス",
    ),
    ("set.node_rtp", "RTP port range", "RTP ポート範囲"),
    ("set.node_log", "Log level", "ログレベル"),
    (
        "set.reports_tz",
        "Time zone of reports (hours, days, months); a change rebuilds them",
        "レポートのタイムゾーン（時・日・月の区切り）。変更するとレポートを再集計します",
    ),
    (
        "set.fmt_tz",
        "Use an IANA time zone name such as Asia/Tokyo or UTC.",
        "Asia/Tokyo や UTC のような IANA タイムゾーン名を指定してください。",
    ),
    ("nav.reports", "Reports", "レポート"),
    ("nav.prompts", "Prompts", "音声ガイダンス"),
    ("nav.moh", "Music on hold", "保留音"),
    (
        "set.prompts_recorders",
        "Extensions allowed to record prompts by phone (*77 + prompt number): comma-separated NUMBER (default tenant) or NUMBER@DOMAIN, no spaces; empty = nobody",
        "電話でガイダンスを録音できる内線（*77 + ガイダンス番号）: カンマ区切りの 番号（既定テナント）または 番号@ドメイン、空白なし。空 = なし",
    ),
    (
        "set.transfer_transferee_hears",
        "What a transferred caller hears while the transfer target rings: music (hold music) or silence",
        "転送先の呼出中に転送される側が聞く音: music(保留音)または silence(無音)",
    ),
    (
        "set.blf_show_caller",
        "Whether BLF keys show the other party of a call: show or hide",
        "BLF キーに通話相手を表示するか: show(表示)または hide(非表示)",
    ),
    (
        "set.intercom_audio",
        "Intercom (*80 + extension) audio: two-way, or one-way (the called phone's microphone is muted)",
        "インターコム(*80 + 内線)の音声: two-way(双方向)または one-way(片方向、呼び出された電話機のマイクをミュート)",
    ),
    (
        "set.blf_max_keys",
        "Most BLF/presence subscriptions (keys) one extension may hold",
        "1 内線が持てる BLF/プレゼンス購読(キー)の上限",
    ),
    (
        "set.transfer_on_failure",
        "When a transfer target is busy or does not answer after the transferor hung up: callback (ring the transferor again) or hangup",
        "転送元が切断した後に転送先が話中・不応答のとき: callback(転送元を再呼出)または hangup(切断)",
    ),
    (
        "set.prompts_language",
        "Language of the prompts callers hear",
        "発信者に流す音声ガイダンスの言語",
    ),
    (
        "set.fmt_choice",
        "Choose one of the listed values.",
        "一覧の値から選んでください。",
    ),
    (
        "set.fmt_token",
        "Enter a value without spaces (at most 255 characters), or leave empty.",
        "空白を含まない値（255 文字まで）を入力するか、空欄にしてください。",
    ),
    (
        "set.mail_host",
        "SMTP server for voicemail e-mails (empty: no e-mail)",
        "留守番電話メールの SMTP サーバー（空欄ならメールを送りません）",
    ),
    ("set.mail_port", "SMTP port", "SMTP ポート"),
    (
        "set.mail_security",
        "SMTP connection security: starttls, tls (implicit) or none",
        "SMTP 接続の暗号化: starttls、tls（暗黙的 TLS）、none",
    ),
    (
        "set.mail_username",
        "SMTP user name (empty: no authentication)",
        "SMTP ユーザー名（空欄なら認証なし）",
    ),
    (
        "set.mail_from",
        "Sender address of voicemail e-mails",
        "留守番電話メールの差出人アドレス",
    ),
    (
        "set.fmt_listen",
        "Enter IP:PORT addresses separated by commas, or leave empty to use the configuration file.",
        "IP:ポート をカンマ区切りで入力してください（空欄なら設定ファイルの値）。",
    ),
    (
        "set.fmt_range",
        "Enter LOW-HIGH with 1024 ≤ LOW < HIGH, or leave empty.",
        "LOW-HIGH 形式（1024 ≤ LOW < HIGH）で入力するか、空欄にしてください。",
    ),
    (
        "set.fmt_address",
        "Enter an IP address, or leave empty.",
        "IP アドレスを入力するか、空欄にしてください。",
    ),
    (
        "set.fmt_log",
        "Use error, warn, info, debug or trace (or a filter such as info,pbx=debug).",
        "error, warn, info, debug, trace のいずれか（または info,pbx=debug のようなフィルタ）を指定してください。",
    ),
    (
        "set.integer",
        "Enter a whole number.",
        "整数を入力してください。",
    ),
    (
        "set.algorithms",
        "Use MD5 and/or SHA-256, separated by commas.",
        "MD5 と SHA-256 をカンマ区切りで指定してください。",
    ),
    ("set.bootstrap", "Node configuration", "ノード構成"),
    (
        "set.bootstrap_note",
        "What this node runs with now. The node settings above override the configuration file at the next start; `denwa serve` flags and DENWA_* variables override both.",
        "このノードの現在の値です。上のノード設定は次回起動時に設定ファイルより優先されます。`denwa serve` のオプションと DENWA_* 環境変数はさらに優先されます。",
    ),
    (
        "backup.intro",
        "A backup holds the whole database (extensions, settings, administrators, call history) and the data files, consistent even while calls run.",
        "バックアップにはデータベース全体（内線、設定、管理者、通話履歴）とデータファイルが含まれ、通話中でも整合性が保たれます。",
    ),
    (
        "backup.download",
        "Download a backup",
        "バックアップをダウンロード",
    ),
    ("backup.restore", "Restore", "復元"),
    (
        "backup.restore_note",
        "The file is checked completely first; a wrong or damaged file is refused and nothing changes. Restoring replaces all current data.",
        "ファイルは先にすべて検証され、誤ったファイルや壊れたファイルは拒否されて何も変更されません。復元すると現在のデータはすべて置き換えられます。",
    ),
    (
        "backup.restored",
        "Backup restored.",
        "バックアップを復元しました。",
    ),
    (
        "backup.refused",
        "Backup refused, nothing was changed:",
        "バックアップを受け付けませんでした（何も変更していません）：",
    ),
    (
        "backup.upload_failed",
        "The upload failed.",
        "アップロードに失敗しました。",
    ),
    ("yes", "yes", "はい"),
    ("no", "no", "いいえ"),
    ("save", "Save", "保存"),
    ("saved", "Saved.", "保存しました。"),
    ("create", "Create", "作成"),
    ("delete", "Delete", "削除"),
    ("search", "Search", "検索"),
    ("total", "Total", "件数"),
    ("prev", "Previous", "前へ"),
    ("next", "Next", "次へ"),
    ("back", "Back to the list", "一覧に戻る"),
    ("conf.joined", "joined", "参加"),
    (
        "set.mail_ca_file",
        "PEM file of CA certificates trusted for the SMTP server besides the public roots (a private relay's CA; empty: public roots only)",
        "SMTP サーバーの証明書を検証するために公開ルートに加えて信頼する CA 証明書の PEM ファイル（社内リレーの CA。空欄なら公開ルートのみ）",
    ),
    (
        "set.mail_retry_s",
        "Seconds before the first retry of a failed voicemail e-mail (then doubling, at most an hour)",
        "送信に失敗した留守番電話メールを最初に再送するまでの秒数（以後は倍々、最長 1 時間）",
    ),
    (
        "set.tones_country",
        "Call-progress tones Denwa plays (ringback): jp (Japan) or na (North America)",
        "Denwa が流す呼出音などの可聴音: jp(日本)または na(北米)",
    ),
    (
        "set.moh_class",
        "Music-on-hold class for held parties, transferred callers and a lone conference member",
        "保留中・転送中の相手と会議室に一人でいる参加者が聞く保留音クラス",
    ),
    (
        "set.fmt_class",
        "Enter a class name: lower-case letters, digits, - and _ (1 to 32 characters).",
        "クラス名を入力してください（英小文字・数字・-・_、1〜32 文字）。",
    ),
    (
        "ivr.cos",
        "Class of service for outside numbers (internal, local, national, mobile, international; empty: mobile)",
        "外線番号への発信規制クラス(internal・local・national・mobile・international、空欄は mobile)",
    ),
    (
        "ivr.hint_more",
        "Also: group:NAME (a ring group), vm:1001, voicemail (asks for the box), conf:800, park, park:701, page:NAME, timecond:NAME, or a number (an extension, or an outside number dialled through the outbound routes with the class of service above and the main number as caller ID). An extension chosen here follows its forwarding, DND and voicemail settings.",
        "ほかに group:名前(着信グループ)、vm:1001、voicemail(ボックス番号を尋ねる)、conf:800、park、park:701、page:名前、timecond:名前、または番号(内線番号、または上の発信規制クラスと代表番号の発信者番号で発信ルートから発信する外線番号)。ここで選ばれた内線は、その転送・応答拒否・ボイスメールの設定に従います。",
    ),
    ("ev.recording_start", "recording started", "録音開始"),
    ("ev.recording_stop", "recording stopped", "録音停止"),
    (
        "set.recording_beep",
        "When both parties hear a beep about call recording: toggle (started or stopped with *1), all (also when an always-recorded call is answered) or off",
        "通話録音のビープ音を双方に鳴らすとき: toggle(*1 で開始・停止したとき)、all(常時録音の通話の応答時にも)、off(鳴らさない)",
    ),
];

/// The text of `key` in `lang`. An unknown key is a bug: debug builds panic, release builds
/// show the key.
pub fn t(lang: Lang, key: &str) -> &'static str {
    match MESSAGES.iter().find(|(k, _, _)| *k == key) {
        Some((_, en, ja)) => match lang {
            Lang::En => en,
            Lang::Ja => ja,
        },
        None => {
            debug_assert!(false, "missing message {key:?}");
            "?"
        }
    }
}

/// True when `key` has a text.
pub fn has(key: &str) -> bool {
    MESSAGES.iter().any(|(k, _, _)| *k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_both_languages_and_unique_keys() {
        let mut seen = std::collections::HashSet::new();
        for (k, en, ja) in MESSAGES {
            assert!(seen.insert(*k), "duplicate {k}");
            assert!(!en.is_empty() && !ja.is_empty(), "{k}");
            assert_ne!(en, ja, "{k} is not translated");
        }
    }

    /// The texts of the account rules quote the limits of `engine::policy`; a changed limit
    /// fails here until the texts follow.
    #[test]
    fn policy_texts_quote_the_policy_limits() {
        use engine::policy::{self, PolicyError as P};
        let (lo, hi) = (policy::MAX_CONTACTS.start(), policy::MAX_CONTACTS.end());
        let cases = [
            (
                P::SipPasswordShort,
                policy::SIP_PASSWORD_LEN.start().to_string(),
            ),
            (
                P::SipPasswordLong,
                policy::SIP_PASSWORD_LEN.end().to_string(),
            ),
            (
                P::AdminPasswordShort,
                policy::ADMIN_PASSWORD_MIN.to_string(),
            ),
            (P::AdminUsername, policy::ADMIN_USERNAME_MAX.to_string()),
            (P::DisplayName, policy::DISPLAY_NAME_MAX.to_string()),
            (P::MaxContacts, format!("{lo} to {hi}")),
        ];
        for (e, n) in cases {
            let en = t(Lang::En, e.key());
            assert!(en.contains(&n), "{}: {en:?} lacks {n}", e.key());
            assert!(e.to_string().contains(&n), "{e}");
        }
        assert!(t(Lang::Ja, P::MaxContacts.key()).contains(&format!("{lo}〜{hi}")));
        let every = [
            P::SipPasswordShort,
            P::SipPasswordLong,
            P::SipPasswordChars,
            P::SipPasswordHasNumber,
            P::SipPasswordClasses,
            P::AdminPasswordShort,
            P::AdminUsername,
            P::DisplayName,
            P::MaxContacts,
        ];
        for e in every {
            assert!(has(e.key()), "{e:?} has no text");
        }
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None, None), Lang::En);
        assert_eq!(negotiate(None, Some("ja-JP,ja;q=0.9,en;q=0.8")), Lang::Ja);
        assert_eq!(negotiate(None, Some("fr, en;q=0.5, ja;q=0.4")), Lang::En);
        assert_eq!(negotiate(None, Some("fr, ja;q=0.7, en;q=0.5")), Lang::Ja);
        assert_eq!(negotiate(None, Some("ja;q=0")), Lang::En);
        assert_eq!(negotiate(Some("en"), Some("ja")), Lang::En);
        assert_eq!(negotiate(Some("xx"), Some("ja")), Lang::Ja);
    }
}
