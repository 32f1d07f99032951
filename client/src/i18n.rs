//! The staff-facing words of Porta — the desktop app's and the `porta`
//! command's plain-words messages — in Catalan, Spanish, Italian and
//! English, in the formal register of docs/staff-guide.md (Catalan and
//! Italian address the person with the plural imperative, Spanish with
//! *usted*).
//!
//! Every message is a [`Msg`] variant and every variant has all four
//! languages: [`Msg::text`] is one `match` the compiler checks for
//! completeness; the tests check that no entry is empty and that every
//! language keeps the same `{placeholders}`. Written by hand rather than
//! with Fluent or gettext: four languages and a few dozen sentences do not
//! need a runtime, files to install or plural rules.

/// A language of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    /// Català.
    #[serde(rename = "ca")]
    Ca,
    /// Español.
    #[serde(rename = "es")]
    Es,
    /// Italiano.
    #[serde(rename = "it")]
    It,
    /// English.
    #[serde(rename = "en")]
    En,
}

impl Lang {
    /// All languages, in the order the settings list them.
    pub const ALL: [Lang; 4] = [Lang::Ca, Lang::Es, Lang::It, Lang::En];

    /// All languages, in the order of docs/staff-guide.md's sections.
    pub const ALL_IN_GUIDE_ORDER: [Lang; 4] = [Lang::En, Lang::Ca, Lang::Es, Lang::It];

    /// The language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Ca => "Català",
            Lang::Es => "Español",
            Lang::It => "Italiano",
            Lang::En => "English",
        }
    }

    /// The two-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ca => "ca",
            Lang::Es => "es",
            Lang::It => "it",
            Lang::En => "en",
        }
    }

    /// The language of a POSIX locale name (`ca_ES.UTF-8`, `es`, `it_IT`),
    /// if it is one of ours.
    pub fn from_locale(locale: &str) -> Option<Lang> {
        let language = locale
            .split(['_', '.', '@', '-'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == language)
    }

    /// The system's language, as the environment gives it (`LC_ALL`,
    /// `LC_MESSAGES`, `LANGUAGE`'s first entry, `LANG`); English when
    /// none is ours.
    pub fn from_environment() -> Lang {
        Self::from_variables(|name| std::env::var(name).ok())
    }

    /// [`Lang::from_environment`] over any source of variables.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANGUAGE", "LANG"]
            .into_iter()
            .filter_map(|name| get(name).filter(|v| !v.is_empty()))
            .map(|value| value.split(':').next().unwrap_or_default().to_owned())
            .find(|value| value != "C" && value != "POSIX" && !value.starts_with("C."))
            .and_then(|value| Lang::from_locale(&value))
            .unwrap_or(Lang::En)
    }
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $name:ident { en: $en:literal, ca: $ca:literal, es: $es:literal, it: $it:literal } )*) => {
        /// A staff-facing message.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Msg {
            $( $(#[$doc])* $name, )*
        }

        impl Msg {
            /// Every message, for tests and tools.
            pub const ALL: &'static [Msg] = &[$(Msg::$name),*];

            /// The message in `lang`, `{placeholders}` unfilled.
            pub fn text(self, lang: Lang) -> &'static str {
                match self {
                    $( Msg::$name => match lang {
                        Lang::En => $en,
                        Lang::Ca => $ca,
                        Lang::Es => $es,
                        Lang::It => $it,
                    }, )*
                }
            }
        }
    };
}

impl Msg {
    /// The message in `lang` with each `{name}` replaced by its value.
    pub fn fill(self, lang: Lang, values: &[(&str, &str)]) -> String {
        let mut text = self.text(lang).to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

catalogue! {
    /// The window's title.
    AppTitle { en: "Porta", ca: "Porta", es: "Porta", it: "Porta" }
    /// First run: what to paste.
    PasteInvitation {
        en: "Paste the invitation your IT unit sent you",
        ca: "Enganxeu la invitació que us ha enviat el servei d'informàtica",
        es: "Pegue la invitación que le ha enviado el servicio de informática",
        it: "Incollate l'invito che vi hanno inviato i servizi informatici"
    }
    /// First run: the field's hint.
    InvitationHint {
        en: "It starts with porta1_ and may span several lines; paste it whole.",
        ca: "Comença per porta1_ i pot ocupar diverses línies; enganxeu-la sencera.",
        es: "Empieza por porta1_ y puede ocupar varias líneas; péguela entera.",
        it: "Inizia con porta1_ e può occupare più righe; incollatelo per intero."
    }
    /// The invitation field's accessible label.
    InvitationField { en: "Invitation", ca: "Invitació", es: "Invitación", it: "Invito" }
    /// Button: go on to the preview.
    Continue { en: "Continue", ca: "Continua", es: "Continuar", it: "Continua" }
    /// Button: go back.
    Back { en: "Back", ca: "Enrere", es: "Atrás", it: "Indietro" }
    /// Preview: heading.
    PreviewTitle {
        en: "Enroll this computer",
        ca: "Donar d'alta aquest ordinador",
        es: "Dar de alta este equipo",
        it: "Registrare questo computer"
    }
    /// Preview: whom the invitation is for.
    PreviewFor {
        en: "This invitation is for {person}'s computer \"{device}\", valid until {until}.",
        ca: "Aquesta invitació és per a l'ordinador «{device}» de {person}, vàlida fins al {until}.",
        es: "Esta invitación es para el equipo «{device}» de {person}, válida hasta el {until}.",
        it: "Questo invito è per il computer «{device}» di {person}, valido fino al {until}."
    }
    /// Preview: the controller could not be asked whom it is for.
    PreviewUnconfirmed {
        en: "The town hall's server could not be asked whom this invitation is for. Enroll only an invitation IT sent to you.",
        ca: "No s'ha pogut preguntar al servidor de l'ajuntament per a qui és aquesta invitació. Doneu d'alta només una invitació que informàtica us hagi enviat a vós.",
        es: "No se ha podido preguntar al servidor del ayuntamiento para quién es esta invitación. Dé de alta solo una invitación que informática le haya enviado a usted.",
        it: "Non è stato possibile chiedere al server del comune per chi è questo invito. Registrare solo un invito che i servizi informatici hanno mandato a sé."
    }
    /// Preview: the fold with what IT may ask about.
    PreviewDetails {
        en: "Details for IT",
        ca: "Detalls per a informàtica",
        es: "Detalles para informática",
        it: "Dettagli per i servizi informatici"
    }
    /// Preview: the town hall's server.
    PreviewController {
        en: "Your town hall's server: {controller}",
        ca: "Servidor del vostre ajuntament: {controller}",
        es: "Servidor de su ayuntamiento: {controller}",
        it: "Server del vostro comune: {controller}"
    }
    /// Preview: its identity.
    PreviewFingerprint {
        en: "Server certificate: {fingerprint}",
        ca: "Certificat del servidor: {fingerprint}",
        es: "Certificado del servidor: {fingerprint}",
        it: "Certificato del server: {fingerprint}"
    }
    /// Preview: what will happen.
    PreviewWhat {
        en: "A key is created on this computer and never leaves it. The town hall registers this computer with it; then you can connect to the town hall's network from here.",
        ca: "Es crea una clau en aquest ordinador, que no en surt mai. L'ajuntament registra aquest ordinador amb aquesta clau; després us podreu connectar a la xarxa de l'ajuntament des d'aquí.",
        es: "Se crea una clave en este equipo, que nunca sale de él. El ayuntamiento registra este equipo con ella; después podrá conectarse desde aquí a la red del ayuntamiento.",
        it: "Su questo computer viene creata una chiave che non lo lascia mai. Il comune registra questo computer con essa; poi potrete collegarvi da qui alla rete del comune."
    }
    /// Preview: it replaces an earlier enrollment.
    PreviewReplaces {
        en: "This computer is enrolled as {device}; this invitation replaces that enrollment.",
        ca: "Aquest ordinador està registrat com a {device}; aquesta invitació substitueix aquell registre.",
        es: "Este equipo está registrado como {device}; esta invitación sustituye ese registro.",
        it: "Questo computer è registrato come {device}; questo invito sostituisce quella registrazione."
    }
    /// Button: enroll.
    Enroll { en: "Enroll", ca: "Dona d'alta", es: "Dar de alta", it: "Registra" }
    /// Enroll again after a confirmation.
    EnrollAgain {
        en: "Enroll again with a new key",
        ca: "Torna'l a donar d'alta amb una clau nova",
        es: "Darlo de alta de nuevo con una clave nueva",
        it: "Registralo di nuovo con una nuova chiave"
    }
    /// While a request runs.
    Working { en: "Working…", ca: "Un moment…", es: "Un momento…", it: "Un momento…" }
    /// Enrolled as.
    EnrolledAs {
        en: "{device} · {user}",
        ca: "{device} · {user}",
        es: "{device} · {user}",
        it: "{device} · {user}"
    }
    /// Button: connect.
    Connect { en: "Connect", ca: "Connecta", es: "Conectar", it: "Collega" }
    /// Button: disconnect.
    Disconnect { en: "Disconnect", ca: "Desconnecta", es: "Desconectar", it: "Scollega" }
    /// State: connected.
    StateConnected {
        en: "Connected to the town hall's network",
        ca: "Connectat a la xarxa de l'ajuntament",
        es: "Conectado a la red del ayuntamiento",
        it: "Collegato alla rete del comune"
    }
    /// State: connecting.
    StateConnecting {
        en: "Connecting…",
        ca: "S'està connectant…",
        es: "Conectando…",
        it: "Collegamento in corso…"
    }
    /// State: disconnected.
    StateDisconnected {
        en: "Not connected",
        ca: "No connectat",
        es: "No conectado",
        it: "Non collegato"
    }
    /// Status: since when.
    ConnectedSince { en: "Time connected", ca: "Temps connectat", es: "Tiempo conectado", it: "Durata del collegamento" }
    /// Status: the gateway.
    Gateway { en: "Through", ca: "A través de", es: "A través de", it: "Tramite" }
    /// Status: traffic.
    Traffic { en: "Traffic", ca: "Trànsit", es: "Tráfico", it: "Traffico" }
    /// Status: traffic each way.
    TrafficEachWay {
        en: "{received} received, {sent} sent",
        ca: "{received} rebuts, {sent} enviats",
        es: "{received} recibidos, {sent} enviados",
        it: "{received} ricevuti, {sent} inviati"
    }
    /// Status: last handshake.
    LastHandshake { en: "Last contact with the town hall", ca: "Últim contacte amb l'ajuntament", es: "Último contacto con el ayuntamiento", it: "Ultimo contatto con il comune" }
    /// Status: seconds ago.
    SecondsAgo {
        en: "{seconds} s ago",
        ca: "fa {seconds} s",
        es: "hace {seconds} s",
        it: "{seconds} s fa"
    }
    /// Status: never.
    Never { en: "never", ca: "mai", es: "nunca", it: "mai" }
    /// Status: DNS.
    TownDns { en: "Town DNS", ca: "DNS de l'ajuntament", es: "DNS del ayuntamiento", it: "DNS del comune" }
    /// What the town lets this computer reach.
    Reach {
        en: "What you can reach through Porta",
        ca: "A què podeu accedir a través de Porta",
        es: "A qué puede acceder a través de Porta",
        it: "Cosa potete raggiungere tramite Porta"
    }
    /// Problem: controller unreachable.
    ControllerUnreachable {
        en: "The town hall's server cannot be reached. The connection still works; changes made by IT will arrive when the server is back.",
        ca: "No es pot accedir al servidor de l'ajuntament. La connexió continua funcionant; els canvis que faci informàtica arribaran quan el servidor torni a respondre.",
        es: "No se puede acceder al servidor del ayuntamiento. La conexión sigue funcionando; los cambios que haga informática llegarán cuando el servidor vuelva a responder.",
        it: "Il server del comune non è raggiungibile. Il collegamento continua a funzionare; le modifiche dei servizi informatici arriveranno quando il server tornerà a rispondere."
    }
    /// Problem: gateway unreachable.
    GatewayUnreachable {
        en: "The town hall's gateway does not answer, although your internet connection works: the problem is at the town hall. Porta keeps trying; if it lasts, tell your IT unit.",
        ca: "La passarel·la de l'ajuntament no respon, tot i que la connexió a internet funciona: el problema és a l'ajuntament. Porta continua intentant-ho; si dura, aviseu el servei d'informàtica.",
        es: "La pasarela del ayuntamiento no responde, aunque su conexión a internet funciona: el problema está en el ayuntamiento. Porta sigue intentándolo; si dura, avise al servicio de informática.",
        it: "Il gateway del comune non risponde, anche se la connessione a internet funziona: il problema è in comune. Porta continua a provare; se dura, occorre avvisare i servizi informatici."
    }
    /// Problem: nothing answers, not even the controller's host.
    Offline {
        en: "Nothing on the internet answers this computer, not even the town hall's server: check your internet connection (Wi-Fi, cable, router). Porta reconnects by itself.",
        ca: "Res d'internet no respon a aquest ordinador, ni tan sols el servidor de l'ajuntament: comproveu la connexió a internet (wifi, cable, encaminador). Porta es tornarà a connectar sol.",
        es: "Nada en internet responde a este equipo, ni siquiera el servidor del ayuntamiento: compruebe su conexión a internet (wifi, cable, router). Porta volverá a conectarse solo.",
        it: "Niente su internet risponde a questo computer, nemmeno il server del comune: occorre verificare la connessione a internet (Wi-Fi, cavo, router). Porta si ricollegherà da sé."
    }
    /// Problem: the gateway does not answer and this computer's clock is wrong.
    ClockWrong {
        en: "This computer's date and time are wrong (more than 5 minutes away from the town hall's), so the town hall's gateway does not answer it. Set the date and time automatically; Porta reconnects by itself within a minute.",
        ca: "La data i l'hora d'aquest ordinador no són correctes (a més de 5 minuts de les de l'ajuntament) i per això la passarel·la de l'ajuntament no li respon. Configureu la data i l'hora automàtiques; Porta es tornarà a connectar sol en menys d'un minut.",
        es: "La fecha y la hora de este equipo no son correctas (a más de 5 minutos de las del ayuntamiento) y por eso la pasarela del ayuntamiento no le responde. Configure la fecha y la hora automáticas; Porta se volverá a conectar solo en menos de un minuto.",
        it: "La data e l'ora di questo computer non sono corrette (a più di 5 minuti da quelle del comune), perciò il gateway del comune non gli risponde. Impostate data e ora automatiche; Porta si ricollegherà da solo entro un minuto."
    }
    /// Problem: no network.
    NoNetwork {
        en: "This computer has no network connection. Porta reconnects by itself when it has one again.",
        ca: "Aquest ordinador no té connexió a la xarxa. Porta es tornarà a connectar sol quan en torni a tenir.",
        es: "Este equipo no tiene conexión de red. Porta se volverá a conectar solo cuando vuelva a tenerla.",
        it: "Questo computer non ha una connessione di rete. Porta si ricollegherà da solo quando tornerà disponibile."
    }
    /// Revoked: the computer's access was withdrawn for good.
    Revoked {
        en: "Your IT unit withdrew this computer's access to the town hall's network. To connect it again you need a new invitation from them; contact them if this is a mistake.",
        ca: "El servei d'informàtica ha retirat l'accés d'aquest ordinador a la xarxa de l'ajuntament. Per tornar-lo a connectar us cal una invitació nova; poseu-vos-hi en contacte si és un error.",
        es: "El servicio de informática ha retirado el acceso de este equipo a la red del ayuntamiento. Para volver a conectarlo necesita una invitación nueva; póngase en contacto con ellos si se trata de un error.",
        it: "I servizi informatici hanno revocato l'accesso di questo computer alla rete del comune. Per ricollegarlo serve un nuovo invito; in caso di errore, occorre contattarli."
    }
    /// Paused: the person's account is disabled or suspended for now.
    Paused {
        en: "Your account is paused by your IT unit, so this computer cannot connect for now. Nothing needs to be done here: when IT reactivates your account, Porta connects again by itself.",
        ca: "El servei d'informàtica ha suspès temporalment el vostre compte i, de moment, aquest ordinador no es pot connectar. No cal fer res aquí: quan informàtica reactivi el compte, Porta es tornarà a connectar sol.",
        es: "El servicio de informática ha suspendido temporalmente su cuenta y, por ahora, este equipo no puede conectarse. No hace falta hacer nada aquí: cuando informática reactive su cuenta, Porta volverá a conectarse solo.",
        it: "L'account è stato sospeso temporaneamente dai servizi informatici, perciò per ora questo computer non può collegarsi. Non occorre fare nulla: quando l'account sarà riattivato, Porta si ricollegherà da sé."
    }
    /// Revoked: enroll with a new invitation.
    NewInvitation {
        en: "I have a new invitation",
        ca: "Tinc una invitació nova",
        es: "Tengo una invitación nueva",
        it: "Ho un nuovo invito"
    }
    /// The invitation is damaged.
    InvitationDamaged {
        en: "This Porta invitation is incomplete. Copy it again, whole, from the e-mail IT sent you.",
        ca: "La invitació de Porta està incompleta. Torneu-la a copiar, sencera, del correu que us ha enviat informàtica.",
        es: "La invitación de Porta está incompleta. Vuelva a copiarla, entera, del correo que le ha enviado informática.",
        it: "L'invito di Porta è incompleto. Occorre copiarlo di nuovo, per intero, dall'e-mail dei servizi informatici."
    }
    /// The invitation was used or expired.
    InvitationRefused {
        en: "This invitation was already used or has expired. Ask your IT unit for a new one.",
        ca: "Aquesta invitació ja s'ha fet servir o ha caducat. Demaneu-ne una de nova al servei d'informàtica.",
        es: "Esta invitación ya se ha usado o ha caducado. Pida una nueva al servicio de informática.",
        it: "Questo invito è già stato usato o è scaduto. Chiedetene uno nuovo ai servizi informatici."
    }
    /// The invitation was used already.
    InvitationUsed {
        en: "This invitation was already used: each one works once. Ask your IT unit for a new one.",
        ca: "Aquesta invitació ja s'ha fet servir, i cada invitació només serveix una vegada. Demaneu-ne una de nova al servei d'informàtica.",
        es: "Esta invitación ya se ha usado, y cada invitación solo sirve una vez. Pida una nueva al servicio de informática.",
        it: "Questo invito è già stato usato e ogni invito vale una volta sola. Occorre chiederne uno nuovo ai servizi informatici."
    }
    /// The invitation expired.
    InvitationExpired {
        en: "This invitation has expired. Ask your IT unit for a new one.",
        ca: "Aquesta invitació ha caducat. Demaneu-ne una de nova al servei d'informàtica.",
        es: "Esta invitación ha caducado. Pida una nueva al servicio de informática.",
        it: "Questo invito è scaduto. Occorre chiederne uno nuovo ai servizi informatici."
    }
    /// The controller knows no such invitation.
    InvitationUnknown {
        en: "The town hall does not recognise this invitation: it was copied with a mistake, or IT withdrew it. Copy it again from the e-mail, or ask your IT unit for a new one.",
        ca: "L'ajuntament no reconeix aquesta invitació: s'ha copiat malament o informàtica l'ha retirada. Torneu-la a copiar del correu o demaneu-ne una de nova al servei d'informàtica.",
        es: "El ayuntamiento no reconoce esta invitación: se ha copiado mal o informática la ha retirado. Vuelva a copiarla del correo o pida una nueva al servicio de informática.",
        it: "Il comune non riconosce questo invito: è stato copiato male oppure i servizi informatici lo hanno ritirato. Occorre copiarlo di nuovo dall'e-mail o chiederne uno nuovo ai servizi informatici."
    }
    /// The invitation is for a person whose account is paused.
    InvitationPaused {
        en: "This invitation is for an account your IT unit has paused. Ask them to reactivate it; then this same invitation works, as long as it has not expired.",
        ca: "Aquesta invitació és per a un compte que el servei d'informàtica ha suspès temporalment. Demaneu-los que el reactivin; llavors aquesta mateixa invitació funcionarà, mentre no hagi caducat.",
        es: "Esta invitación es para una cuenta que el servicio de informática ha suspendido temporalmente. Pídales que la reactiven; entonces esta misma invitación funcionará, mientras no haya caducado.",
        it: "Questo invito è per un account sospeso temporaneamente dai servizi informatici. Occorre chiedere di riattivarlo; allora questo stesso invito funzionerà, purché non sia scaduto."
    }
    /// Another device has the name the invitation gives.
    DeviceNameTaken {
        en: "Another computer already has the name this invitation gives. Ask your IT unit for a new invitation, or to remove the old computer.",
        ca: "Un altre ordinador ja té el nom que dona aquesta invitació. Demaneu al servei d'informàtica una invitació nova o que doni de baixa l'ordinador antic.",
        es: "Otro equipo ya tiene el nombre que da esta invitación. Pida al servicio de informática una invitación nueva o que dé de baja el equipo antiguo.",
        it: "Un altro computer ha già il nome indicato da questo invito. Occorre chiedere ai servizi informatici un nuovo invito o di rimuovere il computer vecchio."
    }
    /// The key made for this computer is known already.
    KeyInUse {
        en: "The town hall already knows the key Porta made for this computer. Try again; if it happens again, copy the diagnostics for your IT unit.",
        ca: "L'ajuntament ja coneix la clau que Porta ha generat per a aquest ordinador. Torneu-ho a provar; si torna a passar, copieu el diagnòstic per al servei d'informàtica.",
        es: "El ayuntamiento ya conoce la clave que Porta ha generado para este equipo. Vuelva a intentarlo; si vuelve a ocurrir, copie el diagnóstico para el servicio de informática.",
        it: "Il comune conosce già la chiave che Porta ha generato per questo computer. Occorre riprovare; se succede di nuovo, copiare la diagnostica per i servizi informatici."
    }
    /// Only an administrator of this computer may do what was asked.
    NeedsAdministrator {
        en: "This computer is already enrolled. Moving it to another organisation, or replacing or removing its enrollment, needs an administrator of this computer. Ask whoever looks after it (or your IT unit).",
        ca: "Aquest ordinador ja està inscrit. Traslladar-lo a una altra organització, o substituir-ne o eliminar-ne la inscripció, requereix un administrador de l'ordinador. Demaneu-ho a qui se n'ocupa (o al servei d'informàtica).",
        es: "Este equipo ya está inscrito. Trasladarlo a otra organización, o sustituir o eliminar su inscripción, requiere un administrador del equipo. Pídalo a quien se ocupa de él (o al servicio de informática).",
        it: "Questo computer è già registrato. Spostarlo in un'altra organizzazione, o sostituirne o rimuoverne la registrazione, richiede un amministratore del computer. Chiedete a chi se ne occupa (o ai servizi informatici)."
    }
    /// The service took too long to answer.
    ServiceSilent {
        en: "The Porta service on this computer is not answering. Restart the computer, or ask your IT unit to restart the Porta service.",
        ca: "El servei Porta d'aquest ordinador no respon. Reinicieu l'ordinador o demaneu al servei d'informàtica que reiniciï el servei Porta.",
        es: "El servicio Porta de este equipo no responde. Reinicie el equipo o pida al servicio de informática que reinicie el servicio Porta.",
        it: "Il servizio Porta di questo computer non risponde. Riavviate il computer o chiedete ai servizi informatici di riavviare il servizio Porta."
    }
    /// The controller cannot be reached while enrolling.
    EnrollUnreachable {
        en: "The town hall's server cannot be reached. Check your internet connection and try again.",
        ca: "No es pot accedir al servidor de l'ajuntament. Comproveu la connexió a internet i torneu-ho a provar.",
        es: "No se puede acceder al servidor del ayuntamiento. Compruebe su conexión a internet y vuelva a intentarlo.",
        it: "Il server del comune non è raggiungibile. Verificate la connessione a internet e riprovate."
    }
    /// The service is not running.
    ServiceNotRunning {
        en: "The Porta service is not running on this computer. Ask your IT unit to run: sudo systemctl enable --now porta",
        ca: "El servei Porta no s'està executant en aquest ordinador. Demaneu al servei d'informàtica que executi: sudo systemctl enable --now porta",
        es: "El servicio Porta no se está ejecutando en este equipo. Pida al servicio de informática que ejecute: sudo systemctl enable --now porta",
        it: "Il servizio Porta non è in esecuzione su questo computer. Chiedete ai servizi informatici di eseguire: sudo systemctl enable --now porta"
    }
    /// Reach: what every device reaches (town-wide routes).
    ReachEveryone {
        en: "The town hall's shared services",
        ca: "Els serveis comuns de l'ajuntament",
        es: "Los servicios comunes del ayuntamiento",
        it: "I servizi comuni del comune"
    }
    /// Copy the command an error names.
    CopyCommand {
        en: "Copy the command for IT",
        ca: "Copia l'ordre per a informàtica",
        es: "Copiar la orden para informática",
        it: "Copia il comando per i servizi informatici"
    }
    /// The service stopped while the app watched it.
    ServiceStopped {
        en: "The Porta service on this computer stopped (an update restarts it, for instance). Porta connects to it again by itself as soon as it is back.",
        ca: "El servei Porta d'aquest ordinador s'ha aturat (per exemple, perquè una actualització el reinicia). Porta s'hi tornarà a connectar sol tan bon punt torni a funcionar.",
        es: "El servicio Porta de este equipo se ha detenido (por ejemplo, porque una actualización lo reinicia). Porta volverá a conectarse a él solo en cuanto vuelva a funcionar.",
        it: "Il servizio Porta di questo computer si è fermato (per esempio perché un aggiornamento lo riavvia). Porta si ricollegherà da sé appena sarà di nuovo attivo."
    }
    /// The user is not in the porta group.
    NotInGroup {
        en: "Your user account ({user}) may not connect this computer yet. Ask your IT unit to run: sudo adduser {user} porta — then log out and in again.",
        ca: "El vostre compte d'usuari ({user}) encara no pot connectar aquest ordinador. Demaneu al servei d'informàtica que executi: sudo adduser {user} porta — i després tanqueu la sessió i torneu a entrar.",
        es: "Su cuenta de usuario ({user}) todavía no puede conectar este equipo. Pida al servicio de informática que ejecute: sudo adduser {user} porta — y después cierre la sesión y vuelva a entrar.",
        it: "Il vostro account utente ({user}) non può ancora collegare questo computer. Chiedete ai servizi informatici di eseguire: sudo adduser {user} porta — poi uscite dalla sessione e rientrate."
    }
    /// Any other failure, with the service's words.
    Failed {
        en: "Something went wrong: {detail}",
        ca: "Alguna cosa no ha anat bé: {detail}",
        es: "Algo no ha ido bien: {detail}",
        it: "Qualcosa non è andato a buon fine: {detail}"
    }
    /// Button: retry.
    Retry { en: "Try again", ca: "Torna-ho a provar", es: "Volver a intentarlo", it: "Riprova" }
    /// Button: copy diagnostics.
    CopyDiagnostics {
        en: "Copy diagnostics for IT",
        ca: "Copia el diagnòstic per a informàtica",
        es: "Copiar el diagnóstico para informática",
        it: "Copia la diagnostica per i servizi informatici"
    }
    /// Diagnostics were copied.
    DiagnosticsCopied {
        en: "Copied. Paste it into your message to IT.",
        ca: "Copiat. Enganxeu-lo al missatge per a informàtica.",
        es: "Copiado. Péguelo en su mensaje a informática.",
        it: "Copiato. Incollatelo nel messaggio ai servizi informatici."
    }
    /// Button: settings.
    Settings { en: "Settings", ca: "Configuració", es: "Configuración", it: "Impostazioni" }
    /// Setting: connect at login.
    ConnectAtLogin {
        en: "Connect when I log in",
        ca: "Connecta quan iniciï la sessió",
        es: "Conectar al iniciar sesión",
        it: "Collega all'accesso"
    }
    /// Setting: start minimised.
    StartMinimised {
        en: "Start minimised",
        ca: "Inicia minimitzat",
        es: "Iniciar minimizado",
        it: "Avvia ridotto a icona"
    }
    /// Setting: language.
    Language { en: "Language", ca: "Idioma", es: "Idioma", it: "Lingua" }
    /// Button: done with settings.
    Done { en: "Done", ca: "Fet", es: "Hecho", it: "Fatto" }
    /// Tray menu: open the window.
    OpenWindow { en: "Open Porta", ca: "Obre Porta", es: "Abrir Porta", it: "Apri Porta" }
    /// Tray menu: quit the app (the tunnel stays).
    Quit {
        en: "Quit (the connection stays as it is)",
        ca: "Surt (la connexió es queda com està)",
        es: "Salir (la conexión se queda como está)",
        it: "Esci (il collegamento resta com'è)"
    }
    /// Notification: connected.
    NotifyConnected {
        en: "Porta: connected to the town hall's network",
        ca: "Porta: connectat a la xarxa de l'ajuntament",
        es: "Porta: conectado a la red del ayuntamiento",
        it: "Porta: collegato alla rete del comune"
    }
    /// Notification: disconnected without being asked.
    NotifyDropped {
        en: "Porta: the connection to the town hall was lost; it is being restored",
        ca: "Porta: s'ha perdut la connexió amb l'ajuntament; s'està restablint",
        es: "Porta: se ha perdido la conexión con el ayuntamiento; se está restableciendo",
        it: "Porta: il collegamento con il comune si è interrotto; è in corso il ripristino"
    }
    /// CLI: not connected.
    NotConnected { en: "not connected", ca: "no connectat", es: "no conectado", it: "non collegato" }
}

/// The words for a problem the service reports (none for `NONE`).
pub fn problem_words(problem: porta_proto::local::status::Problem) -> Option<Msg> {
    use porta_proto::local::status::Problem;
    Some(match problem {
        Problem::ControllerUnreachable => Msg::ControllerUnreachable,
        Problem::GatewayUnreachable => Msg::GatewayUnreachable,
        Problem::Offline => Msg::Offline,
        Problem::ClockWrong => Msg::ClockWrong,
        Problem::NoNetwork => Msg::NoNetwork,
        Problem::None => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn every_message_exists_in_all_four_languages_with_the_same_placeholders() {
        for message in Msg::ALL {
            let english = placeholders(message.text(Lang::En));
            for lang in Lang::ALL {
                let text = message.text(lang);
                assert!(!text.trim().is_empty(), "{message:?} in {lang:?} is empty");
                assert_eq!(placeholders(text), english, "{message:?} in {lang:?}");
            }
        }
    }

    #[test]
    fn sentences_are_translated_not_copied() {
        // Only names, symbols and shared words may read the same in two
        // languages; a whole sentence left in English is a forgotten one.
        for message in Msg::ALL {
            let english = message.text(Lang::En);
            if english.split_whitespace().count() < 4 {
                continue;
            }
            for lang in [Lang::Ca, Lang::Es, Lang::It] {
                assert_ne!(message.text(lang), english, "{message:?} in {lang:?}");
            }
        }
    }

    #[test]
    fn the_language_follows_the_locale_and_falls_back_to_english() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            Lang::from_variables(|name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        assert_eq!(with(&[("LANG", "ca_ES.UTF-8")]), Lang::Ca);
        assert_eq!(
            with(&[("LANG", "es_ES.UTF-8"), ("LC_ALL", "it_IT.UTF-8")]),
            Lang::It
        );
        assert_eq!(
            with(&[("LANGUAGE", "es:en"), ("LANG", "en_GB.UTF-8")]),
            Lang::Es
        );
        assert_eq!(with(&[("LANG", "ca_ES@valencia")]), Lang::Ca);
        assert_eq!(with(&[("LANG", "de_DE.UTF-8")]), Lang::En);
        assert_eq!(
            with(&[("LC_ALL", "C.UTF-8"), ("LANG", "it_IT.UTF-8")]),
            Lang::It
        );
        assert_eq!(with(&[]), Lang::En);
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            Msg::NotInGroup.fill(Lang::Es, &[("user", "anna")]),
            "Su cuenta de usuario (anna) todavía no puede conectar este equipo. Pida al servicio de informática que ejecute: sudo adduser anna porta — y después cierre la sesión y vuelva a entrar."
        );
    }
}
