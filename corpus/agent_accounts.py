"""Domains of `corpus.agent_calls`' agents that look after an account, an order or an item: refills,
outages, cards, parcels, loans, lines, claims, flights and pet food orders.

Written in corpus.agent_templates' terms (see there for slots and frames).
"""

from __future__ import annotations

from corpus.agent_templates import (
    NO_SLOT_RETRY,
    arg,
    day_arg,
    domain,
    err,
    fact,
    name_arg,
    not_found,
    out,
    ref_arg,
    tool,
)

PHARMACY = domain(
    "pharmacy",
    "a community pharmacy|a high street chemist",
    "{place} Pharmacy|{last}'s Chemist|{adj} Leaf Pharmacy",
    [
        tool(
            "refill_prescription|request_refill|order_refill",
            "Request a prescription refill.|Queue a refill for pickup.",
            "take prescription refill requests",
            "I'd like to refill my prescription|can I order a refill|I need a repeat of my prescription",
            [
                ref_arg(
                    "prescription_number|rx_number|script_id",
                    "prescription number",
                    "RXdddddd|dddddd|dddddddd",
                ),
                name_arg("name|customer_name|full_name"),
                day_arg("pickup_day|collect_on|day"),
            ],
            [
                out("status", "status", values="queued|ready soon|being prepared"),
                out("date", "ready_on|pickup_date|ready_date"),
                out("amount", "copay|price|cost", lo=5, hi=60),
            ],
            "Your refill is {status} and will be ready on {date}; the cost is {amount}.|"
            "Done, it'll be ready for pickup on {date}, and it's {amount}.",
            [
                not_found("prescription number"),
                err(
                    "no refills remaining|refills used up",
                    "That prescription has no refills left, so I can't order it. "
                    "You'd need a new one from your prescriber.|"
                    ""
                    "I'm sorry, there are no refills remaining on that one.",
                ),
            ],
        ),
    ],
    [
        fact(
            "The counter is open 8 am to 8 pm, and 10 am to 4 pm on Sundays.",
            "what are your hours?|are you open on sunday?",
            "We're open 8 to 8, and on Sundays from 10 to 4.",
        ),
        fact(
            "Refills are usually ready within 24 hours.",
            "how long does a refill take?|how quickly is it ready?",
            "Refills are usually ready within a day.",
        ),
    ],
)


UTILITY = domain(
    "utility",
    "an electricity company|a water utility|a gas and power supplier",
    "{place} Power|{place} Water|{adj} Grid Energy|{place} Utilities",
    [
        tool(
            "report_outage|log_outage|create_outage_report",
            "Report a supply outage at an address.|Log a power or water outage.",
            "take outage reports",
            "I want to report an outage|the power's out at my place|we've got no water|"
            "I'm calling because the electricity went off",
            [
                ref_arg(
                    "account_number|account|account_id", "account number", "dddddddd|ddddddddd|LLdddddd", 0.7
                ),
                arg(
                    "postcode",
                    "postcode|zip|postal_code|zip_code",
                    "in {v}|my postcode is {v}|the zip is {v}",
                ),
                arg(
                    "reason",
                    "details|description|problem",
                    "{v}|and {v}|It's like {v}.",
                    required=0.3,
                    phrases="the whole street is dark|the lights flickered and went out|"
                    "there was a loud bang outside|"
                    "the water pressure just dropped|only half the house has power",
                ),
            ],
            [
                out("ref", "incident|reference|ticket_id", fmt="INCdddddd|dddddd|OUTdddd"),
                out("time", "restore_by|estimated_fix|eta"),
                out("status", "status", values="crew assigned|investigating|known outage"),
            ],
            "Thanks, that's logged as {ref}. Status: {status}, and we expect it back by {time}.|"
            "I've reported it, reference {ref}. A crew is on it and it should be fixed by {time}.",
        ),
        tool(
            "outage_status|check_area|check_outage",
            "Check for a known outage in a postcode.|Is there an outage in this area?",
            "check outages by area",
            "is there an outage in my area?|is there a known problem near me?|"
            "is the power out everywhere round here?",
            [arg("postcode", "postcode|zip|area_code", "in {v}|my postcode is {v}|It's {v}.")],
            [
                out("status", "status|outage", values="outage reported|no known outage"),
                out("time", "restore_by|eta"),
            ],
            "In that area: {status}, expected to be fixed by {time}.|"
            "I see {status} there; the estimate is {time}.",
        ),
    ],
    [
        fact(
            "Never touch a fallen power line; call the emergency line instead.",
            "there's a cable down in the street, what do I do?",
            "Please stay well away from it and call the emergency line right away.",
        ),
        fact(
            "Customers get a 20 dollar credit for outages longer than 12 hours.",
            "do I get any money back for this?|is there compensation?",
            "If the outage lasts more than 12 hours, you get a 20 dollar credit.",
        ),
    ],
)


BANK = domain(
    "bank",
    "a retail bank|a credit union|an online bank",
    "{place} Bank|{place} Credit Union|{adj} Savings|{last} and {last2} Bank",
    [
        tool(
            "freeze_card|block_card|lock_card|suspend_card",
            "Freeze a payment card.|Block a card right away.",
            "freeze cards that are lost or stolen",
            "I need to freeze my card|can you block my card|I want to lock my debit card|"
            "my card's been stolen",
            [
                arg(
                    "id",
                    "last_four|card_last4|last_digits|card_ending",
                    "the last four are {v}|it ends in {v}|card ending {v}|The last four digits are {v}.",
                    "What are the last four digits of the card?|"
                    "Which card is it? The last four digits, please.",
                    slot="last4",
                    fmt="dddd",
                ),
                arg(
                    "reason",
                    "reason|why",
                    "because {v}|{v}|I think {v}",
                    "Can I ask why you want to freeze it?|What happened to the card?",
                    phrases="I lost my wallet on the bus|someone stole my bag|I left it at a restaurant|"
                    "there are charges I don't recognise|I can't find it anywhere",
                    required=0.7,
                ),
            ],
            [out("status", "status|card_status", values="frozen|blocked"), out("echo", "card", slot="last4")],
            "Your card ending {last4} is now {status}.|"
            "Done. The card ending in {last4} is {status}, so nobody can use it.",
            [
                err(
                    "no card with those digits|card not found",
                    "I can't find a card ending {last4} on your account. Could you check the digits?",
                    fix="last4",
                    retry="oh, it's {v}|sorry, {v}|try {v}",
                ),
                err(
                    "card already frozen",
                    "That card ending {last4} is already frozen, so it can't be used.|"
                    "It's already frozen, nothing more to do.",
                ),
            ],
        ),
        tool(
            "order_replacement|replace_card|send_new_card",
            "Order a replacement card.|Send a new card to the address on file.",
            "order replacement cards",
            "can I get a new card sent out?|I need a replacement card|could you send me a new card",
            [
                arg(
                    "id",
                    "last_four|old_card_last4",
                    "the old one ended {v}|it ended in {v}",
                    slot="last4",
                    fmt="dddd",
                ),
                arg(
                    "choice",
                    "delivery|shipping|speed",
                    "by {v}|{v} please|with {v}",
                    "Standard delivery or express?",
                    options={"standard": "standard post|standard", "express": "express|express delivery"},
                    required=0.5,
                ),
            ],
            [out("date", "arrives_by|delivery_date|eta"), out("amount", "fee|charge", lo=5, hi=60)],
            "Your new card will arrive by {date}, and the fee is {amount}.|"
            "It's ordered; expect it by {date}. There's a {amount} fee.",
        ),
    ],
    [
        fact(
            "Frozen cards can be unfrozen in the mobile app.",
            "can I unfreeze it myself if I find it?|what if the card turns up?",
            "Yes, you can unfreeze it yourself in the mobile app.",
        ),
        fact(
            "The bank never asks for a full card number or PIN on the phone.",
            "do you need my pin?|should I give you the whole card number?",
            "No, never share your PIN or the full card number; the last four digits are enough.",
        ),
    ],
)


PARCEL = domain(
    "parcel",
    "a parcel delivery company|a courier service",
    "{place} Parcels|{adj} Courier|{place} Express|Swift{noun} Delivery",
    [
        tool(
            "schedule_redelivery|rebook_delivery|arrange_redelivery",
            "Arrange a new delivery for a missed parcel.|Rebook a delivery on a day and time window.",
            "rebook missed deliveries",
            "I missed a delivery|I got a card saying you tried to deliver|can you redeliver my parcel|"
            "I wasn't home when the driver came",
            [
                ref_arg(
                    "tracking_id|tracking_number|parcel_id|consignment",
                    "tracking number",
                    "LLddddddddLL|ddddddddd|TRKdddddd",
                ),
                day_arg("day|delivery_day|redelivery_day", "on {v}|{v} would be good|for {v}"),
                arg(
                    "choice",
                    "window|slot|time_window",
                    "in the {v}|{v} please|sometime in the {v}",
                    "Morning, afternoon or evening?|Which time window suits you?",
                    options={"morning": "morning", "afternoon": "afternoon", "evening": "evening"},
                    required=0.6,
                ),
            ],
            [
                out("status", "status", values="rebooked|scheduled"),
                out("echo", "day", slot="weekday"),
                out("ref", "reference", fmt="Rdddd"),
            ],
            "Your parcel is {status} for {weekday}; the reference is {ref}.|"
            "Done, we'll deliver it {weekday}. Reference {ref}.",
            [
                not_found("tracking number"),
                err(
                    "parcel already returned to sender",
                    "I'm sorry, that parcel has already gone back to the sender, so I can't rebook it.",
                ),
            ],
        ),
        tool(
            "track_parcel|parcel_status|where_is_parcel",
            "Where a parcel is.|Tracking status of a parcel.",
            "track parcels",
            "where's my parcel?|can you track a package for me|I'm waiting on a delivery",
            [ref_arg("tracking_id|tracking_number|parcel_id", "tracking number", "LLddddddddLL|ddddddddd")],
            [
                out("status", "status", values="out for delivery|at the depot|in transit"),
                out("date", "expected|eta|due"),
            ],
            "It's {status} and expected on {date}.|Your parcel is {status}; it should arrive {date}.",
            [not_found("tracking number")],
        ),
    ],
    [
        fact(
            "Drivers can leave parcels with a neighbour if the customer agrees.",
            "can you leave it with my neighbour?|can the driver leave it next door?",
            "Yes, the driver can leave it with a neighbour if you're happy with that.",
        ),
    ],
)


LIBRARY = domain(
    "library",
    "a public library|a university library",
    "{place} Public Library|{place} Library|The {last} Reading Room",
    [
        tool(
            "renew_loan|renew_items|extend_loan",
            "Renew a borrowed item.|Extend the loan of an item on a card.",
            "renew loans",
            "I'd like to renew a book|can I renew my loans|I need more time with a book",
            [
                ref_arg(
                    "card_number|library_card|patron_id|borrower_id",
                    "library card number",
                    "dddddddd|Ldddddd|ddddddddd",
                ),
                arg(
                    "text",
                    "title|item|book_title",
                    "it's {v}|the book is {v}|It's called {v}.",
                    "Which item would you like to renew?|What's the title?",
                    phrases="The Night Circus|A Brief History of Time|Beloved|The Name of the Wind|Pachinko|"
                    "Things Fall Apart|The Overstory|Kitchen Confidential",
                    required=0.6,
                ),
            ],
            [
                out("date", "due|new_due_date|due_date"),
                out("count", "renewals_left|renewals_remaining", lo=0, hi=3),
            ],
            "Renewed. It's now due on {date}, and you have {count} renewals left.|"
            "Done, the new due date is {date}.",
            [
                not_found("library card number"),
                err(
                    "item on hold for another reader",
                    "I'm sorry, someone else has a hold on it, so it can't be renewed; "
                    "it's due back as planned.",
                ),
            ],
        ),
        tool(
            "place_hold|reserve_item|request_item",
            "Place a hold on an item.|Reserve a book for pickup.",
            "place holds on books",
            "can I reserve a book|I'd like to put a hold on something|could you hold a book for me",
            [
                ref_arg("card_number|library_card", "library card number", "dddddddd|Ldddddd"),
                arg(
                    "text",
                    "title|book",
                    "it's {v}|the title is {v}|I want {v}",
                    "Which title?|What's the book called?",
                    phrases="The Overstory|Circe|The Remains of the Day|Station Eleven|Educated",
                ),
            ],
            [
                out("count", "queue_position|position|place_in_line", lo=1, hi=6),
                out("ref", "hold_id", fmt="Hdddd"),
            ],
            "You're number {count} in the queue; the hold reference is {ref}.|"
            "Done, hold {ref}. There are people ahead of you; you're number {count}.",
        ),
    ],
    [
        fact(
            "Late fees were abolished; overdue items only block new loans.",
            "are there late fees?|will I get fined?",
            "There are no late fees; overdue items just stop new loans until they're back.",
        ),
        fact(
            "Items can be renewed three times.",
            "how many times can I renew?",
            "You can renew an item up to three times.",
        ),
    ],
    "Happy reading!",
)


INTERNET = domain(
    "internet",
    "an internet provider|a broadband and TV company|a fibre network",
    "{place} Broadband|{adj} Fibre|{place} Net|{noun}Link Internet",
    [
        tool(
            "check_outage|service_status|line_check",
            "Check the caller's line and any outage.|Run a line check for an account.",
            "check for outages",
            "my internet's down|the wifi isn't working|I've got no connection|my broadband keeps dropping",
            [ref_arg("account_id|account_number|customer_id", "account number", "Adddddd|dddddddd|LLdddddd")],
            [
                out("status", "status|line_status", values="outage in your area|line fault|no fault found"),
                out("time", "fix_by|eta|restore_time"),
            ],
            "The check shows {status}; it should be working again by {time}.|"
            "I see {status} on your line, expected fixed by {time}.",
            [not_found("account number")],
        ),
        tool(
            "book_technician|schedule_engineer|book_visit",
            "Book a technician visit.|Send an engineer to the address on file.",
            "book technician visits",
            "can someone come out and look at it?|I'd like a technician to come|could you send an engineer",
            [
                ref_arg("account_id|account_number", "account number", "Adddddd|dddddddd"),
                day_arg("day|visit_day"),
                arg(
                    "choice",
                    "slot|window|time_slot",
                    "in the {v}|{v}",
                    "Morning or afternoon?",
                    options={"am": "morning|the morning", "pm": "afternoon|the afternoon"},
                    required=0.6,
                ),
            ],
            [out("ref", "visit_id|job|reference", fmt="Vdddd|dddddd"), out("echo", "day", slot="weekday")],
            "A technician will come on {weekday}; the visit reference is {ref}.|"
            "Booked for {weekday}, reference {ref}.",
            [
                err(
                    "no engineers free that day",
                    "We have no engineers free on {weekday}. Would another day be okay?",
                    fix="weekday",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
    ],
    [
        fact(
            "Restarting the router fixes most dropouts.",
            "is there anything I can try myself?|should I restart something?",
            "Restarting the router fixes most dropouts: unplug it for thirty seconds, then plug it back in.",
        ),
    ],
)


INSURANCE = domain(
    "insurance",
    "a car and home insurer|an insurance company",
    "{place} Insurance|{adj} Shield Insurance|{last} Mutual",
    [
        tool(
            "claim_status|check_claim|get_claim",
            "Look up a claim.|Status of an insurance claim.",
            "tell customers where their claim stands",
            "I'm calling about my claim|can you check on a claim|has my claim been approved",
            [ref_arg("claim_number|claim_id|claim_ref", "claim number", "CMdddddd|Cdddddd|dddddddd")],
            [
                out("status", "status", values="approved|under review|waiting for documents|paid"),
                out("amount", "amount|payout", lo=150, hi=4000),
                out("date", "updated|decision_date"),
            ],
            "Claim {id} is {status}; the amount is {amount}, last updated {date}.|"
            "It's {status}, for {amount}. The latest update was on {date}.",
            [not_found("claim number")],
        ),
        tool(
            "file_claim|open_claim|start_claim",
            "Open a new claim on a policy.|Start a claim.",
            "open new claims",
            "I need to make a claim|I want to file a claim|something happened and I need to claim",
            [
                ref_arg("policy_number|policy|policy_id", "policy number", "Pdddddd|LLdddddd|dddddddd"),
                arg(
                    "date",
                    "incident_date|date_of_loss|when",
                    "it happened on {v}|on {v}|That was {v}.",
                    "When did it happen?",
                ),
                arg(
                    "reason",
                    "what_happened|description|cause",
                    "{v}|basically {v}|So {v}.",
                    "Can you tell me briefly what happened?",
                    phrases="a tree fell on my car|someone broke into the house|a pipe burst in the kitchen|"
                    "I reversed into a wall|my bike was stolen from the garage",
                ),
            ],
            [
                out("ref", "claim_number|claim_id", fmt="CMdddddd|Cdddddd"),
                out("status", "status", values="opened|submitted"),
            ],
            "Your claim is {status}; the claim number is {ref}.|Done, I've opened claim {ref}.",
            [not_found("policy number")],
        ),
    ],
    [
        fact(
            "Claims are usually decided within ten working days.",
            "how long does a claim take?|when will I hear back?",
            "Most claims are decided within ten working days.",
        ),
    ],
)


AIRLINE = domain(
    "airline",
    "an airline|a regional airline",
    "{place} Air|{adj} Airways|Air {place}|{noun}jet",
    [
        tool(
            "change_flight|rebook_flight|change_booking",
            "Move a booking to a new date.|Change the date of a flight.",
            "change flight dates",
            "I need to change my flight|can I move my flight to another day|I'd like to rebook my flight",
            [
                arg(
                    "id",
                    "confirmation_code|booking_code|pnr|record_locator",
                    "my confirmation code is {v}|the booking code is {v}|It's {v}.",
                    "What's your six-character confirmation code?|Can I have the booking code?",
                    slot="id",
                    fmt="LLdLLd|LdLLdL|LLLdLd|dLLLdL",
                ),
                arg(
                    "date",
                    "new_date|date|travel_date",
                    "to {v}|on {v}|for {v} instead",
                    "What date would you like to fly instead?",
                ),
            ],
            [
                out("echo", "new_date|date", slot="date"),
                out("time", "departs|departure"),
                out("amount", "change_fee|fee|fare_difference", lo=5, hi=60),
            ],
            "You're now on the flight on {date} departing at {time}; the change fee is {amount}.|"
            "Done: {date}, leaving at {time}. There's a {amount} fee.",
            [
                not_found("confirmation code"),
                err(
                    "no seats on that date",
                    "I'm sorry, that flight on {date} is full. Would another date work?",
                    fix="date",
                    retry=NO_SLOT_RETRY,
                ),
            ],
        ),
        tool(
            "add_bags|add_baggage|buy_bags",
            "Add checked bags to a booking.",
            "add checked bags",
            "can I add a bag to my booking|I need to add luggage|I'd like to add checked bags",
            [
                arg(
                    "id",
                    "confirmation_code|booking_code",
                    "the code is {v}|It's {v}.",
                    "What's the confirmation code?",
                    slot="id",
                    fmt="LLdLLd|LdLLdL",
                ),
                arg(
                    "count",
                    "bags|number_of_bags|quantity",
                    "{v} bags|{v} more bags|just {v}",
                    "How many bags?",
                    lo=1,
                    hi=4,
                ),
            ],
            [out("amount", "price|total|cost"), out("echo", "bags", slot="count")],
            "I've added {count} bags for {amount} in total.|Done, {count} bags, that's {amount}.",
            [not_found("confirmation code")],
        ),
    ],
    [
        fact(
            "Each passenger may bring one carry-on bag up to 8 kilos.",
            "how much can I take on board?|what's the carry-on allowance?",
            "You can bring one carry-on bag up to 8 kilos.",
        ),
        fact(
            "Online check-in opens 24 hours before departure.",
            "when can I check in?|when does check-in open?",
            "Online check-in opens 24 hours before the flight.",
        ),
    ],
    "Have a good flight!",
)


PET_FOOD = domain(
    "pet_food",
    "a pet food delivery service|a pet supplies shop",
    "{place} Pet Supplies|Happy {noun} Pet Food|{last}'s Pet Pantry",
    [
        tool(
            "order_food|place_order|reorder",
            "Order pet food for delivery.",
            "take pet food orders",
            "I'd like to order some dog food|can I order more cat food|I need to reorder food for my dog",
            [
                ref_arg(
                    "customer_id|account|customer_number", "customer number", "Cddddd|dddddd|PETdddd", 0.7
                ),
                arg(
                    "choice",
                    "product|food|item",
                    "{v}|the {v}|some {v}",
                    "Which food would you like?",
                    options={
                        "dry_dog": "dry dog food|dog kibble",
                        "wet_dog": "wet dog food|dog food tins",
                        "dry_cat": "dry cat food|cat biscuits",
                        "wet_cat": "wet cat food|cat pouches",
                        "puppy": "puppy food",
                    },
                ),
                arg("count", "bags|quantity|qty", "{v} bags|{v} of them|{v} packs", "How many?", lo=1, hi=6),
            ],
            [
                out("ref", "order_id|order", fmt="Odddddd|dddddd"),
                out("date", "delivery|arrives"),
                out("amount", "total"),
            ],
            "Order {ref} is placed, {amount} in total, arriving {date}.|"
            "Done: it'll arrive {date}; total {amount}, order {ref}.",
            [not_found("customer number")],
        ),
        tool(
            "change_delivery_day|move_delivery|reschedule_delivery",
            "Move a delivery to another weekday.",
            "move deliveries",
            "can I change my delivery day?|I won't be in, can we move the delivery|"
            "could the food come on another day",
            [
                ref_arg("order_id|order", "order number", "Odddddd|dddddd"),
                day_arg("new_day|day|delivery_day"),
            ],
            [out("echo", "day", slot="weekday"), out("status", "status", values="moved|rescheduled")],
            "Your delivery is {status} to {weekday}.|Done, it'll come on {weekday}.",
            [not_found("order number")],
        ),
    ],
    [
        fact(
            "Delivery is free on orders over 40 dollars.",
            "do you charge for delivery?|is delivery free?",
            "Delivery is free on orders over 40 dollars.",
        )
    ],
)

ACCOUNTS = (
    PHARMACY,
    UTILITY,
    BANK,
    PARCEL,
    LIBRARY,
    INTERNET,
    INSURANCE,
    AIRLINE,
    PET_FOOD,
)
