"""A clinic receptionist: an agent no shipped model was trained on, and ten text scenarios for it.

`CLINIC` is the agent as the reasoner reads it (workers.reasoner.Brief) with two tools,
`book_appointment` (patient_name, day, time as HH:MM on a 24-hour clock, reason) and
`cancel_appointment` (patient_name, day); `end_call` is not offered, as the live path briefs every
agent (agent.background.NOT_FOR_REASONER: hanging up is the interaction model's). `CLINIC_SCENARIOS`
are calls written for this evaluation: the history up to a decision (caller turns and the
receptionist's lines) and the decision expected there. Nothing here runs a model
(evaluation.reasoning does).
"""

from __future__ import annotations

from workers.reasoner import Brief, ToolSpec

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

CLINIC = Brief(
    name="clinic",
    instructions=(
        "You are the receptionist of Lakeside Family Clinic. Book and cancel appointments for "
        "patients. The clinic is open Monday to Saturday, 8:00 to 18:00. To book you need the "
        "patient's full name, the day, the time and the reason; ask for what is missing, then call "
        "book_appointment. Times are on a 24-hour clock: 3 in the afternoon is 15:00. Give no "
        "medical advice; in an emergency tell the caller to dial 911."
    ),
    greeting="Lakeside Family Clinic, how can I help you?",
    tools=(
        ToolSpec(
            "book_appointment",
            "Book an appointment this week.",
            {
                "patient_name": {"type": "string", "required": True},
                "day": {"type": "string", "required": True, "enum": DAYS},
                "time": {"type": "string", "required": True, "pattern": TIME},
                "reason": {"type": "string", "required": True},
            },
        ),
        ToolSpec(
            "cancel_appointment",
            "Cancel a patient's appointment.",
            {
                "patient_name": {"type": "string", "required": True},
                "day": {"type": "string", "required": True, "enum": DAYS},
            },
        ),
    ),
)


def _call(*turns: str) -> list[dict]:
    """Alternating caller and receptionist lines, the caller first."""
    return [{"role": "caller" if i % 2 == 0 else "agent", "text": t} for i, t in enumerate(turns)]


def _book(name: str, day: str, time: str, reason: str) -> dict:
    return {
        "kind": "tool",
        "tool": "book_appointment",
        "arguments": {"patient_name": name, "day": day, "time": time, "reason": reason},
    }


CLINIC_SCENARIOS: list[dict] = [
    {
        "name": "clinic-book-one-turn",
        "history": _call(
            "Hi, this is Maria Lopez. I'd like to book a checkup on Tuesday at 10 in the morning, please."
        ),
        "expect": _book("Maria Lopez", "tuesday", "10:00", "checkup"),
    },
    {
        "name": "clinic-book-asked",
        "history": _call(
            "Hello, I need to see a doctor about my back pain.",
            "I can book that. What's your full name, and which day and time suit you?",
            "James Okafor, Thursday at 2 in the afternoon.",
        ),
        "expect": _book("James Okafor", "thursday", "14:00", "back pain"),
    },
    {
        "name": "clinic-book-24h",
        "history": _call("Can I get an appointment for a flu shot on Friday at 16:30? My name is Chen Wang."),
        "expect": _book("Chen Wang", "friday", "16:30", "flu shot"),
    },
    {
        "name": "clinic-book-half-past",
        "history": _call(
            "Hi, I'm Priya Patel.",
            "Hello Priya, how can I help?",
            "I'd like an appointment on Monday at half past nine in the morning for a skin rash.",
        ),
        "expect": _book("Priya Patel", "monday", "09:30", "skin rash"),
    },
    {
        "name": "clinic-book-child",
        "history": _call(
            "I'd like to book my son Lucas Silva in for a vaccination.",
            "Of course. Which day and time would you like?",
            "Wednesday at 11, please.",
        ),
        "expect": _book("Lucas Silva", "wednesday", "11:00", "vaccination"),
    },
    {
        "name": "clinic-book-saturday",
        "history": _call(
            "Do you have anything on Saturday? Around 9 in the morning. It's for a sore throat.",
            "Yes, Saturday at 9 works. What's the patient's full name?",
            "Elena Novak.",
        ),
        "expect": _book("Elena Novak", "saturday", "09:00", "sore throat"),
    },
    {
        "name": "clinic-cancel",
        "history": _call("Hi, this is Tom Walsh, I need to cancel my appointment on Friday."),
        "expect": {
            "kind": "tool",
            "tool": "cancel_appointment",
            "arguments": {"patient_name": "Tom Walsh", "day": "friday"},
        },
    },
    {
        "name": "clinic-cancel-asked",
        "history": _call(
            "I can't make it to my appointment, can you cancel it?",
            "Sure. What's your name and which day is the appointment?",
            "Grace Kim, it's on Wednesday.",
        ),
        "expect": {
            "kind": "tool",
            "tool": "cancel_appointment",
            "arguments": {"patient_name": "Grace Kim", "day": "wednesday"},
        },
    },
    {
        "name": "clinic-missing-details",
        "history": _call("Hi, I'd like to make an appointment."),
        "expect": {"kind": "reply"},
    },
    {
        "name": "clinic-goodbye",
        "history": [
            {
                "role": "caller",
                "text": "Hi, this is Omar Farah, can I come in Monday at 8:30 for a blood test?",
            },
            {
                "role": "tool_call",
                "tool": "book_appointment",
                "arguments": {
                    "patient_name": "Omar Farah",
                    "day": "monday",
                    "time": "08:30",
                    "reason": "blood test",
                },
            },
            {
                "role": "tool_result",
                "tool": "book_appointment",
                "result": {"booking": "LF-2291", "status": "booked"},
            },
            {"role": "agent", "text": "You're booked for Monday at 8:30 for a blood test. Anything else?"},
            {"role": "caller", "text": "No, that's all. Bye!"},
        ],
        # Was end_call after the receptionist's goodbye: a point the live loop never asks about
        # (it reasons after the caller, a key or a tool result, never after its own line).
        "expect": {"kind": "reply"},
    },
]
