"""The interpreters' calls, in both directions: sentence bank, slots and the flow.

"translate-en-es" hears an English caller and says it in Spanish; "translate-es-en" hears a
Spanish caller and says it in English. Both come from one bilingual bank ("English = Spanish"
chunks with slots such as {day}/{day_es}): a `Direction` says which side the caller speaks (its
slots filled with that language's forms) and which the agent voices. The caller says a few
sentences in chunks, each followed by the agent's translation of that chunk (early, while the
caller pauses inside a turn, or after the turn); in the "interpret_correction" scenario the caller
barges in on a translation and says the sentence again with other details. `interpret_call` takes
a `CallBuilder` (corpus.call_builder) and appends those items, drawing every choice from the
call's rng (for "translate-en-es" in exactly the order it always has: cached calls stay valid);
it is what `generate_script` runs for an interpreter.

This module knows nothing of the shop's tools or the support flows, nor of how a script is
validated, stored as JSON or rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

from corpus.call_builder import ONES, CallBuilder, en_number, est_ms
from corpus.call_script import BARGE_MS, INTRO_LANG, PAUSE_MS, TRANSLATE_MS, Gap, Say

INTRO_EN_ES = (
    "Hi, I'm your interpreter. Go ahead whenever you're ready, and I'll translate into Spanish.",
    "Interpreter here. Please go ahead.",
    "Hello, I'll be interpreting into Spanish. Go ahead, please.",
)
# One sentence a line: chunks split by " | ", each "English = Spanish"; a line starting with
# whitespace continues the previous one. Slots ({day}, {n}...) are filled per sentence.
SENTENCE_TEXT = """
Hi, my name is {name} = Hola, me llamo {name} | and I'm calling about my appointment = y llamo por mi cita
I would like to book a table = Quisiera reservar una mesa | for {n} people = para {n_es} personas
    | on {day} at {time} = el {day_es} a las {time_es}
My flight arrives in {city} = Mi vuelo llega a {city} | on {day} {period} = el {day_es} {period_es}
I need a room = Necesito una habitación | for {n} nights = por {n_es} noches
    | starting on {day} = a partir del {day_es}
Can you tell me = ¿Puede decirme | how much the ticket costs? = cuánto cuesta el boleto?
My {rel} has a fever = Mi {rel_es} tiene fiebre | and a bad cough = y mucha tos | since yesterday = desde ayer
Where is the nearest pharmacy? = ¿Dónde está la farmacia más cercana?
I lost my wallet = Perdí mi billetera | on the bus this morning = en el autobús esta mañana
We are going to be late = Vamos a llegar tarde | because of the traffic = por el tráfico
Please send the documents = Por favor, envíe los documentos | to my email = a mi correo electrónico
    | before {day} = antes del {day_es}
The meeting has been moved = La reunión se cambió | to {day} at {time} = al {day_es} a las {time_es}
I don't understand = No entiendo | what the doctor said = lo que dijo el médico
Could you speak more slowly, please? = ¿Podría hablar más despacio, por favor?
How long does the trip take = ¿Cuánto dura el viaje | from here to {city}? = de aquí a {city}?
I would like to pay = Quisiera pagar | with a credit card = con tarjeta de crédito
Is breakfast included = ¿Está incluido el desayuno
    | in the price of the room? = en el precio de la habitación?
My {rel} will pick me up = Mi {rel_es} me va a recoger | at the airport = en el aeropuerto
    | at {time} {period} = a las {time_es} {period_es_at}
The package was supposed to arrive = El paquete debía llegar | {n} days ago = hace {n_es} días
We have {n} children = Tenemos {n_es} hijos | and we need a bigger car = y necesitamos un coche más grande
Thank you very much = Muchas gracias | for your help = por su ayuda
I have an appointment at the clinic = Tengo una cita en la clínica | on {day} = el {day_es}
The water in the bathroom = El agua del baño | is not working = no funciona
Can I change my reservation = ¿Puedo cambiar mi reservación | to next {day}? = para el próximo {day_es}?
It's raining a lot today = Hoy está lloviendo mucho
    | so we will stay at home = así que nos quedaremos en casa
I'm looking for the train station = Busco la estación de tren
My phone number is = Mi número de teléfono es | {phone} = {phone_es}
We need {n} tickets = Necesitamos {n_es} boletos | for the concert on {day} = para el concierto del {day_es}
The store opens at {time} = La tienda abre a las {time_es} | and closes at {time2} = y cierra a las {time2_es}
I want to cancel my order = Quiero cancelar mi pedido | because it's too late = porque ya es muy tarde
Do you know a good restaurant = ¿Conoce un buen restaurante | near the hotel? = cerca del hotel?
My {rel} lives in {city} = Mi {rel_es} vive en {city} | and works at a hospital = y trabaja en un hospital
The taxi to the airport = El taxi al aeropuerto | costs {tens} dollars = cuesta {tens_es} dólares
I have been waiting = He estado esperando | for more than an hour = por más de una hora
Could you help me = ¿Podría ayudarme | fill out this form? = a llenar este formulario?
We arrived yesterday = Llegamos ayer | and we leave on {day} = y nos vamos el {day_es}
What time does the museum close? = ¿A qué hora cierra el museo?
The key to my room = La llave de mi habitación | doesn't work = no funciona
I'd like to order = Quisiera pedir | the chicken with rice = el pollo con arroz
    | and a glass of water = y un vaso de agua
My {rel} is in the hospital = Mi {rel_es} está en el hospital
    | and I need to leave early = y necesito salir temprano
Is there a bus = ¿Hay un autobús | that goes downtown? = que vaya al centro?
The heating in our apartment = La calefacción de nuestro apartamento | has been broken = está rota
    | since {day} = desde el {day_es}
Please call me back = Por favor, devuélvame la llamada
    | after {time} {period} = después de las {time_es} {period_es_at}
We would like to rent a car = Quisiéramos alquilar un coche | for {n} days = por {n_es} días
I think there is a mistake = Creo que hay un error | on my bill = en mi factura
The dog is friendly = El perro es amable | but please close the gate = pero por favor cierre la puerta
{name} will meet you = {name} se reunirá con usted | at the entrance = en la entrada | on {day} = el {day_es}
"""
CLOSING_TEXT = """
That's all for now, thank you. = Eso es todo por ahora, gracias.
Okay, that's everything. = Bueno, eso es todo. | Thanks, goodbye. = Gracias, adiós.
That's it from me. = Eso es todo de mi parte. | Have a good day. = Que tenga un buen día.
"""


def _parse_sentences(text: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    lines: list[str] = []
    for line in text.strip("\n").splitlines():
        if line[:1].isspace():
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return tuple(
        tuple(tuple(x.strip() for x in chunk.split(" = ")) for chunk in line.split(" | ")) for line in lines
    )


SENTENCES = _parse_sentences(SENTENCE_TEXT)
CLOSINGS = _parse_sentences(CLOSING_TEXT)
CORRECTIONS = (
    "Sorry, wait, let me say that again.",
    "Hold on, that's not right, let me start over.",
    "Wait, sorry, I'll say that differently.",
)
# The es->en interpreter introduces itself in English, to the English-speaking party. On a bridged
# line (issue 16) each interpreter speaks only into its listener's leg: the Spanish speaker hears
# the en->es interpreter (whose greeting is Spanish), and this one's voice reaches only the party
# who speaks English, so a Spanish intro would be lost on the one person who hears it. Telephone
# interpreting services do the same: each party is addressed in their own language. It also keeps
# this agent's channel in one language and one voice (the run's `--agent-voice`), as support's is.
INTRO_ES_EN = (
    "Hi, I'm the interpreter on this call. I'll put the Spanish into English for you.",
    "Interpreter here. I'll be interpreting from Spanish.",
    "Hello, I'll be interpreting the Spanish side into English.",
)
CORRECTIONS_ES = (
    "Perdón, espere, lo digo otra vez.",
    "Un momento, eso no está bien, empiezo de nuevo.",
    "Espere, perdón, lo digo de otra manera.",
)
FILLERS_ES = ("eh,", "este,", "eh,", "este,", "o sea,", "pues,")  # inside a sentence
LEADS_ES = ("Eh", "Este", "Bueno, eh", "Pues")  # before it
DAYS_ES = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
DAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ES_NUM = "cero uno dos tres cuatro cinco seis siete ocho nueve diez once".split()
ES_TENS = "_ _ veinte treinta cuarenta cincuenta sesenta setenta ochenta noventa".split()
RELATIONS = (
    ("brother", "hermano"),
    ("sister", "hermana"),
    ("son", "hijo"),
    ("daughter", "hija"),
    ("mother", "madre"),
    ("father", "padre"),
    ("wife", "esposa"),
    ("husband", "esposo"),
)
CITIES = ("Madrid", "Chicago", "Denver", "Lima", "Seattle", "Boston", "Dallas", "Miami", "Houston", "Quito")
PERIODS = (
    ("in the morning", "por la mañana", "de la mañana", (7, 11)),
    ("in the afternoon", "por la tarde", "de la tarde", (2, 6)),
    ("in the evening", "por la noche", "de la noche", (7, 10)),
)


@dataclass(frozen=True)
class Direction:
    """One interpreter's side of the bilingual bank."""

    source: str  # the caller's language: the side of each "English = Spanish" chunk they say
    target: str  # the side the agent says
    intros: tuple[str, ...]  # in `INTRO_LANG`
    corrections: tuple[str, ...]  # the caller's, in `source`
    fillers: tuple[tuple[str, ...], tuple[str, ...]] | None  # (inside, leading) disfluencies; None: English

    def pair(self, chunk: tuple[str, str]) -> tuple[str, str]:
        """An (English, Spanish) chunk as (what the caller says, what the agent says)."""
        return chunk if self.source == "en" else (chunk[1], chunk[0])


DIRECTIONS = {
    "translate-en-es": Direction("en", "es", INTRO_EN_ES, CORRECTIONS, None),
    "translate-es-en": Direction("es", "en", INTRO_ES_EN, CORRECTIONS_ES, (FILLERS_ES, LEADS_ES)),
}


def _slots(c: CallBuilder) -> dict[str, str]:
    rng = c.rng
    day = rng.randrange(7)
    n = rng.randint(2, 9)
    period, period_es, period_es_at, (lo, hi) = c.pick(PERIODS)
    hour = rng.randint(lo, hi)
    close_h = c.pick([h for h in range(5, 12) if h != hour])
    tens = rng.randint(2, 9)
    rel, rel_es = c.pick(RELATIONS)
    phone = [rng.randrange(10) for _ in range(7)]
    return {
        "name": c.pick(c.shop.customers).first,
        "day": DAYS_EN[day],
        "day_es": DAYS_ES[day],
        "n": en_number(n),
        "n_es": ES_NUM[n],
        "time": en_number(hour),
        "time_es": ES_NUM[hour],
        "period": period,
        "period_es": period_es,
        "period_es_at": period_es_at,
        "time2": en_number(close_h),
        "time2_es": ES_NUM[close_h],
        "tens": en_number(tens * 10),
        "tens_es": ES_TENS[tens],
        "rel": rel,
        "rel_es": rel_es,
        "city": c.pick(CITIES),
        "phone": " ".join(ONES[d] for d in phone[:3]) + ", " + " ".join(ONES[d] for d in phone[3:]),
        "phone_es": " ".join(ES_NUM[d] for d in phone[:3]) + ", " + " ".join(ES_NUM[d] for d in phone[3:]),
    }


def interpret_call(c: CallBuilder) -> None:
    """The whole call: maybe an intro, 2-5 sentences and a closing, each chunk translated."""
    d = DIRECTIONS[c.agent_name]
    c.p_caller_bc = 0.0  # an interpreter's caller is not listening to the translation
    rng = c.rng
    agent_last = c.agent(c.pick(d.intros), None, "intro", lang=INTRO_LANG) if rng.random() < 0.5 else None
    caller_last: int | None = None
    sentences = list(rng.sample(SENTENCES, rng.randint(2, 5))) + [c.pick(CLOSINGS)]
    correct_at = rng.randrange(len(sentences) - 1) if c.scenario == "interpret_correction" else -1
    resume: int | None = None  # after a correction: the caller's correction is what the next sentence follows
    si = 0
    while si < len(sentences):
        slots = _slots(c)
        chunks = [d.pair((en.format(**slots), es.format(**slots))) for en, es in sentences[si]]
        joined = [chunks[0]]
        for said, meant in chunks[1:]:
            if rng.random() < 0.3:
                joined[-1] = (f"{joined[-1][0]} {said}", f"{joined[-1][1]} {meant}")
            else:
                joined.append((said, meant))
        if resume is not None:
            gap = Gap("prev_end", c.ms(300, 900), False, resume)
        elif caller_last is None and agent_last is None:
            gap = Gap("prev_start", c.ms(400, 1500), False, None)
        elif caller_last is None or rng.random() < 0.5:
            gap = Gap("prev_end", c.ms(200, 900), False, agent_last)  # waits for the interpreter
        else:
            gap = Gap("prev_end", c.ms(400, 1400), True, caller_last)  # goes on over the interpreter
        resume = None
        src: list[int] = []
        for k, (said, _) in enumerate(joined):
            if k:
                hesitate = rng.random() < 0.2
                gap = Gap("prev_end", c.ms(*PAUSE_MS) if hesitate else c.ms(0, 250), False, src[-1])
            text = _disfluent(c, d, said)
            src.append(c.add(_caller(d, text, "sentence", after=gap, pause_inside_turn=k > 0)))
            if k:
                agent_last = _translate(c, d, src[-2], joined[k - 1][1])
        agent_last = _translate(c, d, src[-1], joined[-1][1])
        caller_last = src[-1]
        hi = min(BARGE_MS[1], int(0.55 * est_ms(joined[-1][1])))
        if si == correct_at and hi >= BARGE_MS[0] and si < len(sentences) - 1:
            resume = c.add(
                _caller(
                    d,
                    c.pick(d.corrections),
                    "correction",
                    barge_in=True,
                    after=Gap("prev_start", c.ms(BARGE_MS[0], hi), True, agent_last),
                )
            )
            correct_at = -1
            continue  # the same sentence again, with other details
        if si == correct_at:
            correct_at += 1  # too short to interrupt; try the next sentence
        si += 1
    c.hang_up(agent_last)


def _disfluent(c: CallBuilder, d: Direction, text: str) -> str:
    p = 0.1 if c.style.mood == "neutral" else 0.3
    if d.fillers is None:
        return c.disfluent(text, p)
    inside, leading = d.fillers
    return c.disfluent(text, p, inside=inside, leading=leading)


def _caller(d: Direction, text: str, intent: str, **timing) -> Say:
    return Say(speaker="caller", text=text, lang=d.source, intent=intent, **timing)


def _translate(c: CallBuilder, d: Direction, source: int, text: str) -> int:
    return c.add(
        Say(
            speaker="agent",
            text=text,
            lang=d.target,
            intent="translation",
            translates=source,
            after=Gap("prev_end", c.ms(*TRANSLATE_MS), True, source),
        )
    )
