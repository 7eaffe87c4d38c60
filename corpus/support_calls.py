"""The customer-service calls of the "support" agent: its phrase banks and one flow per scenario.

Each flow (order status, return, callback, FAQ, handoff, angry, confused, unknown order) takes a
`CallBuilder` (corpus.call_builder) whose greeting has been said and appends the caller's and
the agent's turns, tool calls, keys and timers, drawing every random choice from the call's rng
and every tool result from its seeded shop. `support_call` is what `generate_script` runs.

This module knows nothing of how a script is timed beyond `CallBuilder`'s relations, validated,
stored as JSON or rendered, and nothing of the interpreting agent; the scenario, caller style and shop come
from `generate_script`.
"""

from __future__ import annotations

from typing import Any

from corpus.call_builder import ONES, CallBuilder, en_number, lower_first
from corpus.call_script import KEY_DATE, Gap, Timer
from workers.shop import (
    ALREADY_RETURNED,
    NOT_DELIVERED,
    SHOP_NAME,
    STATUSES,
    WINDOW_CLOSED,
    spoken_amount,
    spoken_date,
    spoken_id,
    spoken_seconds,
)

AGENT_NAME = "Robin"


# -- phrase banks -------------------------------------------------------------------------------

GREETINGS = (  # (text, long enough to be barged in on)
    (f"Thanks for calling {SHOP_NAME}, this is {AGENT_NAME}. How can I help you today?", True),
    (f"{SHOP_NAME}, {AGENT_NAME} speaking. How can I help?", False),
    (
        f"Hi, you've reached {SHOP_NAME}. My name is {AGENT_NAME}, and I can help with orders, returns "
        "and store questions. What can I do for you?",
        True,
    ),
    (
        f"Hello, and thank you for calling {SHOP_NAME}. This call may be recorded for quality purposes. "
        "How can I help you today?",
        True,
    ),
    (f"Hi there, {SHOP_NAME}. What can I do for you?", False),
)
FILLERS = (
    "Let me check that for you.",
    "One moment, let me look that up.",
    "Sure, let me pull that up.",
    "Okay, give me a second to check.",
    "Let me check that.",
    "Just a moment while I look.",
    "Alright, checking now.",
)
ASK_ID = (
    "Sure, I can help with that. What's the order number?",
    "Of course. Could you give me your order number? It's the letter and five digits in your "
    "confirmation email.",
    "Happy to check. What's your order number, please?",
    "I can look into that for you. Do you have the order number handy?",
)
ASK_ID_KEYPAD = (
    "Sure. You can say your order number, or type the five digits on your keypad.",
    "Of course. Please type the five digits of your order number on your keypad, followed by the pound key.",
)
GIVE_ID = (
    "It's {oid}.",
    "Yes, it's {oid}.",
    "Sure, {oid}.",
    "Let me see, | it's {oid}.",
    "{oid}.",
    "I have it here, | {oid}.",
)
OPEN_STATUS_ID = (
    "Hi, I'm calling about my order, {oid}. | Can you tell me where it is?",
    "Hello, I wanted to check on order {oid}.",
    "Hi there, this is {first}. | I placed an order, the number is {oid}, "
    "| and I'd like to know when it's coming.",
    "Yeah, hi. Can you check the status of order {oid} for me?",
    "Good morning. I ordered a {item} a few days ago, | order number {oid}. | Has it shipped yet?",
)
OPEN_STATUS = (
    "Hi, I'd like to check the status of my order.",
    "Hello, I'm wondering where my package is.",
    "Hi, I ordered a {item} | and I wanted to know when it will arrive.",
    "Hey, can you tell me what's going on with my order?",
)
HI = ("", "Thanks, {first}. ", "Thank you. ", "Okay, {first}, I found it. ", "Alright, I have it here. ")
STATUS_ANSWERS = {
    "processing": (
        "Your order is still processing, and it should ship by {date}.",
        "That order is processing in our warehouse right now; it's due to ship by {date}.",
        "I see it. The {item} is still processing and should ship by {date}.",
    ),
    "shipped": (
        "Your order shipped on {shipped} with {carrier}, and it should arrive by {date}.",
        "Good news, the {item} has shipped. It's with {carrier}, and the estimated delivery is {date}.",
        "It shipped with {carrier} on {shipped}, so you can expect it by {date}.",
    ),
    "delivered": (
        "That order was delivered on {date}.",
        "Our records show the {item} was delivered on {date}.",
        "It was delivered on {date}; {carrier} marked it as left at the front door.",
    ),
    "returned": (
        "That order was returned on {date}, and your refund of {amount} has been issued.",
        "I see the {item} was returned on {date}; the refund of {amount} is on its way.",
    ),
}
SIMPLE_STATUS = {  # a confused caller asks again
    "processing": "It's still processing, so it hasn't left our warehouse yet. It should ship by {date}.",
    "shipped": "It has shipped and it's on its way to you. It should be at your door by {date}.",
    "delivered": "It was already delivered, on {date}.",
    "returned": "It was returned to us on {date}, so you'll get your money back.",
}
NOT_FOUND = (
    "I'm sorry, I couldn't find an order with the number {id}. Could you read it to me again?",
    "Hmm, I couldn't find {id} in our system. Could you check the number for me?",
    "I couldn't find an order {id}. Could you say it again, or type the five digits on your keypad?",
)
REASONS = {
    "too small": ("it's too small", "it's a size too small", "it runs small"),
    "too big": ("it's too big", "it's way too large"),
    "damaged": ("it arrived damaged", "it came broken", "the box was crushed and it's damaged"),
    "wrong item": ("you sent me the wrong item", "it's not what I ordered"),
    "changed mind": ("I changed my mind", "I don't need it anymore"),
    "not as described": ("it doesn't look like the picture", "it's not as described"),
}
RETURN_OK = (
    "All done. Your return number is {rid}. I've emailed you a prepaid label, and you'll get "
    "{amount} back once we receive it.",
    "Okay, I've started the return. The return number is {rid}, the label is in your email, "
    "and the refund will be {amount}.",
    "Your return is set up, number {rid}. Once the package reaches us we'll refund {amount}.",
)
RETURN_ERR = {
    NOT_DELIVERED: (
        "It looks like that order hasn't been delivered yet, so I can't start a return until it arrives.",
        "That order hasn't been delivered yet. Once it arrives, give us a call and we'll set up the return.",
    ),
    WINDOW_CLOSED: (
        "I'm sorry, the return window for that order has closed, so I can't start a return.",
        "Unfortunately that order is past our return window, so a return isn't possible anymore.",
    ),
    ALREADY_RETURNED: ("That order has already been returned, so there's nothing more to send back.",),
}
OPEN_RETURN = (
    "Hi, I'd like to return the {item} from order {oid}. | {why}.",
    "Hello, I need to send back my {item}, | {low}. | The order number is {oid}.",
)
OPEN_CALLBACK = (
    "Hi, I'm actually driving right now. | Could you call me back in {s}?",
    "Hello, I'm about to step into a meeting. | Can someone call me back in {s}?",
    "Hi, sorry, I've got someone at the door. | Can you call me back in about {s}?",
)
CALLBACK_OK = (
    "All set, I'll call you back in {s}.",
    "Done. You'll get a call from us in {s}.",
    "Okay, I've booked a callback in {s}. Talk soon.",
)
CALLBACK_HELLO = (
    f"Hi, it's {AGENT_NAME} from {SHOP_NAME}, calling you back as promised. How can I help?",
    f"Hello again, this is {SHOP_NAME} calling back. Is now a better time?",
)
OPEN_HANDOFF = (
    ("Can I speak to a real person, please?", "caller asked for a human"),
    ("I'd like to talk to a manager.", "caller asked for a manager"),
    ("Is there a human I can talk to?", "caller asked for a human"),
    ("I have a billing question, | can you put me through to someone?", "billing question"),
    ("Hi, I need to speak with someone | about a wholesale order.", "wholesale inquiry"),
)
OPEN_ANGRY = (
    "This is the third time I'm calling about this! | I ordered a {item} over a week ago "
    "| and it still hasn't shown up.",
    "I'm really frustrated. | Your website said my order would be here by now, | and I've heard "
    "nothing. No email, nothing.",
    "Yeah, hi. | I've been waiting forever for my {item}, | and honestly this is ridiculous.",
)
APOLOGIES = (
    "I'm really sorry about that, I understand how frustrating it is. Let me look into it right "
    "away. What's your order number?",
    "I'm so sorry to hear that. I'd like to sort this out for you now. Can you give me the order number?",
)
OPEN_CONFUSED = (
    "Hi, um, I'm not sure I called the right number. | I got a message about a package, "
    "| or, uh, maybe an order?",
    "Hello? Is this, uh, the store? | I think I ordered something | but I don't remember what.",
    "Um, yes, hi. My daughter ordered something for me | and, uh, I got an email | and I "
    "don't really understand it.",
)
FAQ = {  # topic -> (caller questions, the agent's search queries)
    "opening hours": (
        (
            "What are your opening hours?",
            "What time do you close today?",
            "Are you open on the weekend?",
            "When is your store open?",
        ),
        ("opening hours", "hours open", "open weekend"),
    ),
    "return policy": (
        ("What's your return policy?", "How long do I have to return something?"),
        ("return policy", "returns"),
    ),
    "shipping times": (
        ("How long does shipping usually take?", "If I order today, when would it get here?"),
        ("shipping time", "how long shipping takes", "delivery time"),
    ),
    "shipping cost": (
        ("How much do you charge for shipping?", "Is shipping free?"),
        ("shipping cost", "free shipping"),
    ),
    "international": (
        ("Do you ship to Canada?", "Can I order from Mexico?"),
        ("international shipping", "ship abroad"),
    ),
    "payment": (
        ("Can I pay with PayPal?", "What kinds of payment do you take?"),
        ("payment methods", "pay with paypal"),
    ),
    "exchanges": (("Can I exchange something for a different size?",), ("exchange", "exchange size")),
    "gift wrap": (("Do you do gift wrapping?",), ("gift wrap",)),
    "store location": (("Where is your store?", "What's your address?"), ("store location", "store address")),
    "refund timing": (
        ("How long does a refund take?", "When will I get my money back?"),
        ("refund when", "when refund arrives"),
    ),
    "order changes": (
        ("Can I cancel an order I just placed?", "Is it possible to change my order?"),
        ("cancel order", "change order"),
    ),
}
NOT_IN_FAQ = (
    ("Are you hiring at the moment?", "hiring jobs"),
    ("Can I place a wholesale order for my company?", "wholesale"),
    ("Do you offer a student discount?", "student discount"),
    ("Do you repair bikes?", "bike repair"),
)
FAQ_PREFIX = ("", "Sure. ", "Good question. ", "Here's what I have: ", "Of course. ")
FAQ_MISS = (
    "I'm sorry, I couldn't find anything about that. Would you like me to transfer you to a "
    "colleague who might know?",
    "I couldn't find an answer to that in our help pages. I can put you through to a colleague, "
    "would that help?",
)
ACKS = (
    "Great, thanks.",
    "Okay, perfect.",
    "Alright, that's good to know.",
    "Okay, thank you.",
    "Oh, good.",
    "Got it, thanks.",
)
ANYTHING_ELSE = (
    ("Is there anything else I can help you with?", False),
    ("Anything else I can do for you today?", False),
    ("Can I help with anything else today, maybe a question about shipping or returns?", True),
)
NO_MORE = (
    "No, that's all, thanks.",
    "Nope, that's it. Thank you!",
    "No thanks, bye.",
    "That's everything, thanks for your help.",
)
GOODBYES = (
    "You're welcome. Have a great day, goodbye!",
    f"Thanks for calling {SHOP_NAME}. Bye now!",
    "My pleasure. Take care!",
    "Glad I could help. Goodbye!",
)
TRANSFER_LINES = (
    "Of course. I'll transfer you to a colleague now, please stay on the line.",
    "No problem, I'm connecting you to someone on our team. One moment.",
    "Sure, I'm transferring you now.",
)
LETTER_WORDS = {
    "A": "apple",
    "B": "boy",
    "C": "cat",
    "D": "dog",
    "F": "frank",
    "H": "henry",
    "K": "king",
    "M": "mary",
    "R": "robert",
    "T": "tom",
}
SECONDS_PHRASES = {
    10: ("ten seconds",),
    15: ("fifteen seconds",),
    20: ("twenty seconds",),
    30: ("thirty seconds", "half a minute"),
    45: ("forty-five seconds",),
    60: ("a minute", "one minute"),
}


# -- flows --------------------------------------------------------------------------------------

# -- support: flows -----------------------------------------------------------------------------


def _digit_words(c: CallBuilder, digits: str) -> list[str]:
    words, i = [], 0
    while i < len(digits):
        w = "oh" if digits[i] == "0" and c.rng.random() < 0.5 else ONES[int(digits[i])]
        if i + 1 < len(digits) and digits[i + 1] == digits[i] and c.rng.random() < 0.5:
            words.append(f"double {w}")
            i += 2
        else:
            words.append(w)
            i += 1
    return words


def _say_id(c: CallBuilder, oid: str) -> str:
    """How a caller reads an order id aloud: digits, digit words, 'as in', pairs, or as printed."""
    letter, digits = oid[0], oid[2:]
    style = c.rng.randrange(5)
    if style == 0:
        return f"{letter} {' '.join(digits)}"
    if style == 1:
        return f"{letter}, {' '.join(_digit_words(c, digits))}"
    if style == 2:
        w = _digit_words(c, digits)
        return f"{letter} as in {LETTER_WORDS.get(letter, letter)}, {' '.join(w[:2])}, {' '.join(w[2:])}"
    if style == 3:
        pair = lambda s: f"oh {ONES[int(s[1])]}" if s[0] == "0" else en_number(int(s))  # noqa: E731
        return f"{letter} {pair(digits[:2])}, {ONES[int(digits[2])]} {pair(digits[3:])}"
    return oid


def _wrong_id(c: CallBuilder, oid: str) -> str:
    """`oid` with one digit misread, naming no order of the shop."""
    while True:
        digits = list(oid[2:])
        k = c.rng.randrange(5)
        digits[k] = str((int(digits[k]) + c.rng.randint(1, 9)) % 10)
        cand = oid[:2] + "".join(digits)
        if digits[0] != "0" and c.shop.order(cand) is None:
            return cand


def _order(c: CallBuilder, statuses: tuple[str, ...]):
    return c.pick([o for o in c.shop.orders if o.status in statuses])


def _ask_id(c: CallBuilder, anchor: int, oid: str, keypad: float = 0.25) -> tuple[int, str]:
    """The agent asks for the order number; the caller says or types it. -> (item to answer, argument)."""
    if c.rng.random() < keypad:
        prompt = c.pick(ASK_ID_KEYPAD)
        a = c.agent(prompt, anchor, "ask_order_id")
        if c.rng.random() < 0.4:
            a = c.caller(
                c.pick(("Okay, one second.", "Sure, typing it now.", "Okay, let me find it.")), a, "keypad"
            )
        end = "#" if "pound key" in prompt else c.pick(("", "#"))
        return c.dtmf(oid[2:] + end, a), oid[2:]
    a = c.agent(c.pick(ASK_ID), anchor, "ask_order_id", bargeable=True)
    return c.caller(c.pick(GIVE_ID).format(oid=_say_id(c, oid)), a, "give_order_id"), oid


def _lookup(
    c: CallBuilder, anchor: int, arg: str, keypad: bool = False
) -> tuple[int, dict | None, str | None]:
    t, r, e = c.tool(anchor, "lookup_order", {"order_id": arg}, c.pick(FILLERS))
    if e:
        text = NOT_FOUND[-1] if keypad else c.pick(NOT_FOUND[:-1])
        return c.agent(text.format(id=spoken_id(arg)), t, "lookup_answer"), r, e
    first = r["customer"].split()[0]
    text = c.pick(HI).format(first=first) + c.pick(STATUS_ANSWERS[r["status"]]).format(**_facts(r))
    return c.agent(text, t, "lookup_answer"), r, e


def _facts(r: dict) -> dict[str, str]:
    return {
        "date": spoken_date(r[KEY_DATE[r["status"]]]),
        "item": r["items"][0]["name"],
        "shipped": spoken_date(r["shipped"]) if "shipped" in r else "",
        "carrier": r.get("carrier", ""),
        "amount": spoken_amount(r["total"]),
    }


def _after_status(c: CallBuilder, a: int, r: dict) -> int | None:
    """Follow-ups to a status answer. -> the caller's last turn, or None when the call was handed off."""
    if r["status"] == "shipped" and c.rng.random() < 0.35:
        s = c.caller(
            c.pick(("Great. Do you have the tracking number?", "Can I get the tracking number?")),
            a,
            "tracking",
        )
        a = c.agent(f"Sure, the tracking number is {spoken_id(r['tracking'])}.", s, "tracking_answer")
    elif r["status"] == "delivered" and c.rng.random() < 0.4:
        s = c.caller(
            c.pick(
                (
                    "But I never got it! | There was nothing at the door.",
                    "That's strange, | I haven't received anything.",
                )
            ),
            a,
            "not_received",
        )
        c.transfer(
            s,
            "delivered order not received",
            "I'm sorry about that. I'll transfer you to a colleague who can open a claim with the "
            "carrier. Please hold.",
        )
        return None
    return c.caller(c.pick(ACKS), a, "ack")


def _faq(c: CallBuilder, question: int, topic: str | None, query: str | None = None) -> int | None:
    query = query or c.pick(FAQ[topic][1])
    t, r, _ = c.tool(question, "search_faq", {"query": query}, c.pick(("Let me look that up.", *FILLERS)))
    if r["matches"]:
        a = c.agent(c.pick(FAQ_PREFIX) + r["matches"][0]["answer"], t, "faq_answer")
        return c.caller(c.pick(ACKS), a, "ack")
    a = c.agent(c.pick(FAQ_MISS), t, "faq_answer")
    if c.rng.random() < 0.6:
        s = c.caller(
            c.pick(("Yes, please.", "Sure, that would be great.", "Yeah, okay.")), a, "accept_transfer"
        )
        c.transfer(s, "question not in FAQ", c.pick(TRANSFER_LINES))
        return None
    return c.caller(c.pick(("No, that's okay.", "No thanks, I'll check the website.")), a, "decline_transfer")


def _ask(c: CallBuilder, leads: tuple[str, ...], question: str) -> str:
    lead = c.pick(leads)
    return lead + (lower_first(question) if lead.endswith(", ") else question)


def _closing(c: CallBuilder, caller: int | None, more: bool = True) -> None:
    """'Anything else?' (now and then one more FAQ question), goodbye, end_call."""
    if caller is None:
        return
    text, long_ = c.pick(ANYTHING_ELSE)
    a = c.agent(text, caller, "anything_else", bargeable=long_)
    if more and c.rng.random() < 0.25:
        topic = c.pick(sorted(FAQ))
        leads = ("Actually, yes. ", "Oh, one more thing. ", "Yes, quickly, ")
        question = _ask(c, leads, c.pick(FAQ[topic][0]))
        return _closing(c, _faq(c, c.caller(question, a, "faq_question"), topic), more=False)
    s = c.caller(c.pick(NO_MORE), a, "no_more")
    c.hang_up(c.agent(c.pick(GOODBYES), s, "goodbye"))


def _order_status(c: CallBuilder, g: int) -> None:
    o = _order(c, STATUSES)
    first, item = c.shop.customer(o.customer_id).first, o.items[0].name
    if c.rng.random() < 0.5:
        text = c.pick(OPEN_STATUS_ID).format(oid=_say_id(c, o.order_id), first=first, item=item)
        s, arg = c.caller(text, g, "order_status"), o.order_id
    else:
        s = c.caller(c.pick(OPEN_STATUS).format(item=item), g, "order_status")
        s, arg = _ask_id(c, s, o.order_id)
    a, r, _ = _lookup(c, s, arg)
    _closing(c, _after_status(c, a, r))


def _return(c: CallBuilder, g: int) -> None:
    ok = [o for o in c.shop.orders if c.shop.returnable(o)]
    o = c.pick(ok) if c.rng.random() < 0.75 else c.pick([o for o in c.shop.orders if o not in ok])
    reason = c.pick(sorted(REASONS))
    phrase = c.pick(REASONS[reason])
    item, oid = o.items[0].name, _say_id(c, o.order_id)
    if c.rng.random() < 0.5:
        text = c.pick(OPEN_RETURN).format(item=item, oid=oid, why=phrase[0].upper() + phrase[1:], low=phrase)
        s = c.caller(text, g, "return")
    else:
        s = c.caller(
            c.pick(
                (
                    "Hi, I'd like to return something.",
                    "Hello, how do I send back an item?",
                    f"Hi, I want to return a {item}.",
                )
            ),
            g,
            "return",
        )
        a = c.agent(
            "I can set that up for you. What's the order number, and why are you sending it back?",
            s,
            "ask_return_details",
            bargeable=True,
        )
        s = c.caller(f"It's {oid}, | and {phrase}.", a, "return_details")
    fillers = ("Okay, let me set up that return.", "Alright, one moment while I start the return.", *FILLERS)
    t, r, e = c.tool(s, "create_return", {"order_id": o.order_id, "reason": reason}, c.pick(fillers))
    a = c.agent(_return_answer(c, r, e), t, "return_answer")
    _closing(c, c.caller(c.pick(ACKS if not e else ("Oh, okay.", "I see. Okay.", "Hmm, alright.")), a, "ack"))


def _return_answer(c: CallBuilder, r: dict | None, e: str | None) -> str:
    if e:
        return c.pick(RETURN_ERR[e])
    return c.pick(RETURN_OK).format(rid=spoken_id(r["return_id"]), amount=spoken_amount(r["refund"]))


def _callback(c: CallBuilder, g: int) -> None:
    secs = c.pick((10, 15, 20, 30, 30, 45, 60))
    args: dict[str, Any] = {"seconds": secs}
    text = c.pick(OPEN_CALLBACK).format(s=c.pick(SECONDS_PHRASES[secs]))
    if c.rng.random() < 0.35:
        phone = args["phone"] = c.pick(c.shop.customers).phone
        spoken = " ".join(_digit_words(c, phone[:3])) + ", " + " ".join(_digit_words(c, phone[4:]))
        text = text[:-1] + f", | on {spoken}?"
    s = c.caller(text, g, "callback_request")
    fillers = ("Sure, let me book that.", "No problem, I'll set that up.", "Of course, one moment.")
    t, r, _ = c.tool(s, "book_callback", args, c.pick(fillers), latency=(500, 2500))
    a = c.agent(c.pick(CALLBACK_OK).format(s=spoken_seconds(secs)), t, "callback_answer")
    if c.rng.random() < 0.7:
        c.caller(c.pick(("Great, thanks.", "Perfect, talk soon.", "Thanks, bye for now.")), a, "ack")
    timer = c.add(
        Timer(seconds=secs, note=f"call back {r['callback_id']}", after=Gap("prev_end", 0, False, t))
    )
    hello = c.agent(c.pick(CALLBACK_HELLO), timer, "callback_hello", bargeable=True)
    if c.rng.random() < 0.6:
        o = _order(c, ("processing", "shipped", "delivered"))
        s = c.caller(
            f"Yes, thanks for calling back. | I wanted to ask about order {_say_id(c, o.order_id)}.",
            hello,
            "order_status",
        )
        a, r, _ = _lookup(c, s, o.order_id)
        _closing(c, _after_status(c, a, r))
    else:
        topic = c.pick(sorted(FAQ))
        s = c.caller("Yes, thanks. | " + c.pick(FAQ[topic][0]), hello, "faq_question")
        _closing(c, _faq(c, s, topic))


def _faq_call(c: CallBuilder, g: int) -> None:
    leads = ("Hi, quick question. ", "Hello. ", "Hi there. ", "")
    if c.rng.random() < 0.15:
        question, query = c.pick(NOT_IN_FAQ)
        return _closing(c, _faq(c, c.caller(_ask(c, leads, question), g, "faq_question"), None, query))
    topic = c.pick(sorted(FAQ))
    _closing(c, _faq(c, c.caller(_ask(c, leads, c.pick(FAQ[topic][0])), g, "faq_question"), topic))


def _handoff(c: CallBuilder, g: int) -> None:
    text, reason = c.pick(OPEN_HANDOFF)
    s = c.caller(text, g, "ask_human")
    if c.rng.random() < 0.5:
        a = c.agent(
            "I can help with orders, returns and store information right here. Is it about one of "
            "those, or would you rather talk to a colleague?",
            s,
            "offer_help",
            bargeable=True,
        )
        s = c.caller(
            c.pick(
                (
                    "I'd really rather talk to a person.",
                    "No, I need a person, please.",
                    "A colleague, please.",
                )
            ),
            a,
            "insist_human",
        )
    c.transfer(s, reason, c.pick(TRANSFER_LINES))


def _angry(c: CallBuilder, g: int) -> None:
    o = _order(c, ("processing", "shipped", "shipped", "delivered"))
    s = c.caller(c.pick(OPEN_ANGRY).format(item=o.items[0].name), g, "complaint")
    a = c.agent(c.pick(APOLOGIES), s, "apology", bargeable=True)
    text = c.pick(
        (
            "It's {oid}.",
            "{oid}. | I've given it to you people twice already.",
            "Fine, it's {oid}.",
            "Just check order {oid}!",
        )
    )
    s = c.caller(text.format(oid=_say_id(c, o.order_id)), a, "give_order_id")
    a, r, _ = _lookup(c, s, o.order_id)
    roll = c.rng.random()
    if roll < 0.4:
        s = c.caller(
            c.pick(
                (
                    "That's not good enough. | I want to speak to a manager.",
                    "Unbelievable. | Put me through to a supervisor.",
                )
            ),
            a,
            "ask_manager",
        )
        c.transfer(
            s,
            "caller asked for a manager",
            c.pick(
                (
                    "I understand. I'll transfer you to a supervisor now, please hold.",
                    "Of course, I'm connecting you with a manager right away.",
                )
            ),
        )
    elif roll < 0.65:
        s = c.caller(
            c.pick(("Whatever. | I just want to send it back.", "Forget it, I want a refund.")), a, "return"
        )
        t, r, e = c.tool(
            s,
            "create_return",
            {"order_id": o.order_id, "reason": "changed mind"},
            "Okay, let me see if I can start a return.",
        )
        a = c.agent(_return_answer(c, r, e), t, "return_answer")
        _closing(c, c.caller(c.pick(("Fine.", "Okay. Fine.", "Hmm, alright.")), a, "ack"), more=False)
    else:
        s = c.caller(c.pick(("Fine. Okay. Thanks.", "Alright. | Well, thanks.")), a, "ack")
        _closing(c, s, more=False)


def _confused(c: CallBuilder, g: int) -> None:
    o = _order(c, STATUSES)
    s = c.caller(c.pick(OPEN_CONFUSED), g, "confused_opening")
    a = c.agent(
        "You're in the right place, I can check that for you. Do you have an order number? It's a "
        "letter followed by five digits, usually at the top of the email.",
        s,
        "ask_order_id",
        bargeable=True,
    )
    if c.rng.random() < 0.3:
        s = c.caller("Oh, um, the numbers? | Where do I find those?", a, "confused")
        a = c.agent("If it's easier, you can also type the five digits on your keypad.", s, "offer_keypad")
        s, arg = c.dtmf(o.order_id[2:] + c.pick(("", "#")), a), o.order_id[2:]
    else:
        full = _say_id(c, o.order_id)
        text = c.pick(
            (
                "Oh, um, let me look... | okay, it says {oid}.",
                "It's, um, {start}, no wait, | {oid}.",
                "I think it's {oid}? | Yes, {oid}.",
            )
        )
        s = c.caller(text.format(oid=full, start=" ".join(full.split()[:2])), a, "give_order_id")
        arg = o.order_id
    a, r, _ = _lookup(c, s, arg)
    s = c.caller(
        c.pick(
            (
                "Sorry, so, um, | when will it come?",
                "So... what does that mean? | Is it coming?",
                "I'm sorry, I didn't quite follow.",
            )
        ),
        a,
        "confused",
    )
    a = c.agent(SIMPLE_STATUS[r["status"]].format(date=spoken_date(r[KEY_DATE[r["status"]]])), s, "restate")
    thanks = c.pick(("Oh, okay. Thank you, dear.", "Oh! Okay, that's good. Thanks."))
    _closing(c, c.caller(thanks, a, "ack"), more=False)


def _unknown_order(c: CallBuilder, g: int) -> None:
    o = _order(c, STATUSES)
    wrong = _wrong_id(c, o.order_id)
    text = c.pick(OPEN_STATUS_ID).format(
        oid=_say_id(c, wrong), first=c.shop.customer(o.customer_id).first, item=o.items[0].name
    )
    s = c.caller(text, g, "order_status")
    keypad = c.rng.random() < 0.25
    a, _, _ = _lookup(c, s, wrong, keypad)
    if keypad:
        s, arg = c.dtmf(o.order_id[2:] + c.pick(("", "#")), a), o.order_id[2:]
    else:
        arg = _wrong_id(c, o.order_id) if c.rng.random() < 0.15 else o.order_id
        text = c.pick(
            (
                "Oh, sorry, I think I misread it. | It's {oid}.",
                "Let me check. | It's {oid}.",
                "Really? | Okay, it's {oid}.",
            )
        )
        s = c.caller(text.format(oid=_say_id(c, arg)), a, "give_order_id")
    a, r, e = _lookup(c, s, arg)
    if e:
        s = c.caller("Hmm, that's odd.", a, "confused")
        a = c.agent(
            "Since I still can't find it, let me transfer you to a colleague who can look it up by "
            "your name. Please hold.",
            s,
            "transfer",
        )
        return c.transfer(a, "order not found")
    _closing(c, _after_status(c, a, r))


SUPPORT_FLOWS = {
    "order_status": _order_status,
    "return": _return,
    "callback": _callback,
    "faq": _faq_call,
    "handoff": _handoff,
    "angry": _angry,
    "confused": _confused,
    "unknown_order": _unknown_order,
}


def support_call(c: CallBuilder) -> None:
    """The whole call for `c.scenario`: a greeting, then that scenario's flow."""
    text, long_ = c.pick(GREETINGS)
    SUPPORT_FLOWS[c.scenario](c, c.agent(text, None, "greeting", bargeable=long_))
