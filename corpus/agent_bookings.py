"""Domains of `corpus.agent_calls`' agents that book things: tables, rooms, repairs, classes, rides,
tickets, pickups, tours, moves and call-outs.

Written in corpus.agent_templates' terms (see there for slots and frames). No domain here is about
health care: an agent for that is held out of training to test the reasoner on.
"""

from __future__ import annotations

from corpus.agent_templates import (
    NO_SLOT_RETRY,
    STATUS_OK,
    TIME_SAY,
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

RESTAURANT = domain(
    "restaurant",
    "an Italian restaurant|a neighbourhood bistro|a seafood restaurant|a family steakhouse|a noodle bar",
    "{place} Bistro|Trattoria {last}|The {adj} {noun}|{last}'s Kitchen|{place} Noodle House",
    [
        tool(
            "book_table|reserve_table|make_reservation|create_booking",
            "Reserve a table.|Book a table for a party at a day and time.",
            "take table reservations|book tables",
            "I'd like to book a table|can I reserve a table|I want to make a reservation|"
            "I was hoping to get a table",
            [
                name_arg("guest_name|name|customer_name|booking_name"),
                arg(
                    "count",
                    "party_size|guests|covers|people",
                    "for {v} people|for {v}|a table for {v}|There'll be {v} of us.",
                    "How many people will be joining?|For how many guests?|How many in your party?",
                    lo=1,
                    hi=10,
                ),
                day_arg(),
                arg("time", "time|reservation_time|at", TIME_SAY, lo=17, hi=22),
                arg(
                    "reason",
                    "notes|special_requests|note",
                    "and {v}|It's {v}.|Oh, and {v}.",
                    required=0.0,
                    phrases="it's a birthday|we need a high chair|one of us uses a wheelchair|"
                    "we'd like a table by the window|it's our anniversary",
                ),
            ],
            [
                out("ref", "confirmation|reference|booking_id|confirmation_code", fmt="Ldddd|LLddd|dddddd"),
                out("status", "status", values=STATUS_OK),
                out("echo", "time|booked_time|reserved_for", slot="time"),
                out("echo", "day|weekday", slot="weekday"),
            ],
            "You're booked for {weekday} at {time}. Your confirmation number is {ref}.|"
            "All set: the table is {status} for {weekday} at {time}, reference {ref}.|"
            "Done, a table for {count} on {weekday} at {time}. The confirmation is {ref}.",
            [
                err(
                    "no table available at that time|fully booked|no availability",
                    "I'm sorry, we're fully booked on {weekday} at {time}. Would another time suit you?|"
                    "Unfortunately there's nothing free at {time} on {weekday}. "
                    "Could you do a different time?",
                    fix="time",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
        tool(
            "cancel_reservation|cancel_booking|cancel_table",
            "Cancel a table reservation.|Cancel an existing booking by its reference.",
            "cancel reservations",
            "I need to cancel my reservation|can I cancel a booking|I have to cancel our table",
            [ref_arg("reservation_id|booking_reference|confirmation", "confirmation number", "Ldddd|LLddd")],
            [out("status", "status|result", values="cancelled|canceled"), out("echo", "booking", slot="id")],
            "Your reservation {id} is {status}.|That's done, booking {id} is now {status}.",
            [not_found("confirmation number")],
        ),
    ],
    [
        fact(
            "The kitchen is open Tuesday to Sunday from 5 pm to 11 pm.",
            "what time do you open?|are you open on mondays?|how late is the kitchen open?",
            "We're open Tuesday to Sunday, from 5 to 11 in the evening.|The kitchen runs from 5 pm to 11 pm, "
            "Tuesday through Sunday; we're closed on Mondays.",
        ),
        fact(
            "Parking is free in the lot behind the building.",
            "is there parking?|where can I park?",
            "Yes, there's free parking in the lot behind the building.",
        ),
        fact(
            "Groups larger than ten need to call the events line.",
            "can I book for a big group, like fifteen people?|do you take large groups?",
            "For groups over ten, the events line handles the booking.",
        ),
    ],
    "Enjoy your meal!|We look forward to seeing you.",
)


HOTEL = domain(
    "hotel",
    "a seaside hotel|a boutique hotel downtown|a family-run guesthouse|an airport hotel",
    "Hotel {place}|The {place} Inn|{adj} {noun} Hotel|{last} House",
    [
        tool(
            "book_room|reserve_room|create_stay|make_booking",
            "Book a room for a stay.|Reserve a hotel room from a check-in date.",
            "book rooms|take room bookings",
            "I'd like to book a room|do you have a room available|I want to reserve a room",
            [
                name_arg("guest_name|name|lead_guest"),
                arg(
                    "date",
                    "check_in|arrival_date|checkin_date|from_date",
                    "from {v}|arriving {v}|checking in on {v}|for {v}",
                    "What date would you be checking in?|When are you arriving?",
                ),
                arg(
                    "count",
                    "nights|number_of_nights|stay_length",
                    "for {v} nights|staying {v} nights|It'd be {v} nights.",
                    "How many nights will you stay?|And for how many nights?",
                    slot="nights",
                    lo=1,
                    hi=9,
                ),
                arg(
                    "choice",
                    "room_type|room|category",
                    "{v}|we'd like {v}|with {v}",
                    "What kind of room would you like: single, double or a suite?|"
                    "Which room type would you like?",
                    options={
                        "single": "a single room|a single",
                        "double": "a double room|a double|a room with a double bed",
                        "twin": "a twin room|two single beds",
                        "suite": "a suite|the suite",
                    },
                ),
            ],
            [
                out("ref", "booking_id|confirmation|reservation_number", fmt="LLdddd|Hdddddd|dddddd"),
                out("amount", "total|price|total_price"),
                out("echo", "check_in|arrival", slot="date"),
                out("status", "status", values="confirmed|reserved"),
            ],
            "Your room is {status} from {date}, the total is {amount} and the booking number is {ref}.|"
            "You're all set for {date}. That comes to {amount}; your confirmation is {ref}.",
            [
                err(
                    "no rooms of that type available|sold out for those dates",
                    "I'm sorry, we have no {choice} left from {date}. Would another room type work?|"
                    "Unfortunately {choice} is sold out for those dates. Could I offer you something else?",
                    fix="choice",
                    retry="okay, {v} then|what about {v}?|{v} is fine",
                )
            ],
        ),
        tool(
            "cancel_room|cancel_stay|cancel_hotel_booking",
            "Cancel a room booking.|Cancel a stay by its booking number.",
            "cancel stays",
            "I need to cancel my booking|I'd like to cancel my stay|we can't make it and need to cancel",
            [ref_arg("booking_id|booking_number|reservation", "booking number", "LLdddd|dddddd")],
            [out("status", "status", values="cancelled"), out("amount", "refund|refund_amount")],
            "Booking {id} is {status}, and {amount} will be refunded to your card.|"
            "Done, it's {status}. You'll get a refund of {amount}.",
            [not_found("booking number")],
        ),
    ],
    [
        fact(
            "Check-in is from 3 pm and check-out is by 11 am.",
            "what time is check-in?|when do we have to check out?",
            "Check-in is from 3 pm, and check-out is by 11 in the morning.",
        ),
        fact(
            "Breakfast is included with every room.",
            "is breakfast included?|do you serve breakfast?",
            "Yes, breakfast is included with every room.",
        ),
        fact(
            "Pets are not allowed.",
            "can I bring my dog?|are pets allowed?",
            "I'm sorry, we don't allow pets.",
        ),
    ],
    "Have a lovely stay!|We look forward to welcoming you.",
)


GARAGE = domain(
    "garage",
    "a car repair shop|an auto service centre|a tyre and brake garage",
    "{last} Auto|{place} Motors|{adj} Wrench Garage|{place} Car Care",
    [
        tool(
            "book_service|schedule_service|book_repair|create_work_order",
            "Book a car in for service.|Schedule a repair or service visit.",
            "book cars in for service|schedule repairs",
            "I need to bring my car in|can I book a service|my car needs looking at|"
            "I'd like to schedule a repair",
            [
                name_arg(),
                arg(
                    "id",
                    "plate|registration|license_plate|car_registration",
                    "the plate is {v}|registration {v}|It's plate number {v}.",
                    "What's the car's registration?|Can I have the license plate?",
                    slot="plate",
                    fmt="LLddLLL|LLLdddd|dLLLddd",
                    required=0.6,
                ),
                arg(
                    "choice",
                    "service|service_type|job|work",
                    "for {v}|I need {v}|it needs {v}",
                    "What does the car need?|What kind of service is it?",
                    options={
                        "oil_change": "an oil change|the oil changed",
                        "brakes": "the brakes checked|a brake job|new brake pads",
                        "tyres": "new tyres|the tires replaced|tyres",
                        "inspection": "an inspection|the annual inspection",
                        "full_service": "a full service|the full service",
                    },
                ),
                day_arg("day|drop_off_day|weekday"),
                arg(
                    "time",
                    "drop_off_time|time",
                    "at {v}|dropping it off at {v}|around {v}",
                    lo=7,
                    hi=17,
                    required=0.6,
                ),
            ],
            [
                out("ref", "job_number|work_order|ticket", fmt="Jdddd|WOdddd|dddddd"),
                out("echo", "day", slot="weekday"),
                out("amount", "estimate|quote|estimated_cost"),
            ],
            "You're booked in for {weekday}, job number {ref}, and the estimate is {amount}.|"
            "Great, see you {weekday}. The job number is {ref} and it should cost about {amount}.",
            [
                err(
                    "workshop full that day|no bays free",
                    "Sorry, the workshop is full on {weekday}. Is there another day that works?|"
                    "We don't have a bay free on {weekday}. Could you bring it another day?",
                    fix="weekday",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
        tool(
            "repair_status|check_job|job_status",
            "Look up where a repair job stands.|Status of a work order.",
            "tell customers how their repair is going",
            "I'm calling to see if my car is ready|is my car done yet|I wanted to check on my repair",
            [ref_arg("job_number|work_order|job_id", "job number", "Jdddd|dddddd")],
            [
                out("status", "status|state", values="ready for pickup|waiting for parts|in progress"),
                out("date", "ready_by|expected|ready_date"),
                out("amount", "balance|amount_due"),
            ],
            "Job {id} is {status}; it should be ready by {date} and the balance is {amount}.|"
            "Your car is {status}. We expect it done by {date}, and you'll owe {amount}.",
            [not_found("job number")],
        ),
    ],
    [
        fact(
            "A loan car costs 25 dollars a day.",
            "can I get a courtesy car?|do you have loan cars?",
            "Yes, we have loan cars for 25 dollars a day.",
        ),
        fact(
            "The workshop opens at 7:30 am on weekdays.",
            "what time can I drop it off?|when do you open?",
            "The workshop opens at 7:30 in the morning on weekdays.",
        ),
    ],
    "Drive safely!",
)


GYM = domain(
    "gym",
    "a fitness club|a yoga studio|a climbing gym|a community leisure centre",
    "{place} Fitness|{adj} Studio|{place} Leisure Centre|Iron {noun} Gym",
    [
        tool(
            "book_class|sign_up_class|reserve_spot|join_class",
            "Book a spot in a class.|Sign a member up for a class.",
            "sign members up for classes",
            "I want to sign up for a class|can I book a class|is there space in a class",
            [
                ref_arg(
                    "member_id|membership_number|member", "membership number", "Mdddddd|ddddd|GYMdddd", 0.7
                ),
                arg(
                    "choice",
                    "class|class_name|activity",
                    "for {v}|the {v} class|{v}",
                    "Which class would you like?|What class are you after?",
                    options={
                        "yoga": "yoga|the yoga",
                        "spin": "spin|spinning",
                        "pilates": "pilates",
                        "boxing": "boxing|boxercise",
                        "zumba": "zumba",
                        "hiit": "HIIT|high intensity",
                    },
                ),
                day_arg(),
                arg("time", "time|start_time|class_time", TIME_SAY, lo=6, hi=20, required=0.7),
            ],
            [
                out("status", "status", values="booked|confirmed|waitlisted"),
                out("echo", "class", slot="choice"),
                out("echo", "day", slot="weekday"),
            ],
            "You're {status} for {choice} on {weekday}.|Done, {choice} on {weekday}: you're {status}.",
            [
                err(
                    "class full|no spaces left",
                    "The {choice} class on {weekday} is full, I'm afraid. Would another day work?",
                    fix="weekday",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
    ],
    [
        fact(
            "Bring a towel; mats are provided.",
            "do I need to bring a mat?|what should I bring?",
            "Mats are provided, just bring a towel.",
        ),
        fact(
            "Members can cancel a class up to two hours before it starts.",
            "what if I can't make it?|can I cancel later?",
            "You can cancel up to two hours before the class starts.",
        ),
    ],
    "Enjoy the class!",
)


TAXI = domain(
    "taxi",
    "a taxi company|an airport shuttle service|a private car service",
    "{place} Cabs|{adj} Taxis|{place} Cars|{last} Shuttle",
    [
        tool(
            "book_taxi|book_ride|request_pickup|schedule_car",
            "Book a taxi pickup.|Send a car to an address at a time.",
            "book taxis",
            "I need a taxi|can I book a cab|could you send a car|I'd like to book a ride",
            [
                arg(
                    "address",
                    "pickup_address|pickup|from_address|address",
                    "from {v}|pick me up at {v}|I'm at {v}|The address is {v}.",
                    "Where should we pick you up?|What's the pickup address?",
                ),
                arg("time", "pickup_time|time|when", "at {v}|for {v}|at around {v}", lo=5, hi=23),
                arg(
                    "count",
                    "passengers|riders|party_size",
                    "for {v} people|{v} of us|There are {v} of us.",
                    "How many passengers?",
                    lo=1,
                    hi=6,
                    required=0.5,
                ),
                name_arg("name|passenger_name", 0.5),
            ],
            [
                out("ref", "booking|booking_ref|ride_id", fmt="Tdddd|dddddd"),
                out("echo", "pickup_time", slot="time"),
                out(
                    "word",
                    "car|vehicle",
                    values="a white Toyota Prius|a black Skoda|a grey minivan|a blue Hyundai",
                ),
            ],
            "Your taxi is booked for {time}; it'll be {word}, booking {ref}.|"
            "Done, a car will pick you up at {time}. Reference {ref}.",
            [
                err(
                    "no cars available at that time",
                    "I'm sorry, we have no cars free at {time}. Could you do a different time?",
                    fix="time",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
        tool(
            "cancel_taxi|cancel_ride|cancel_pickup",
            "Cancel a taxi booking.",
            "cancel rides",
            "I need to cancel my taxi|can you cancel my ride|I don't need the car anymore",
            [ref_arg("booking_ref|ride_id|booking", "booking number", "Tdddd|dddddd")],
            [out("status", "status", values="cancelled"), out("amount", "cancellation_fee|fee", lo=5, hi=60)],
            "Ride {id} is {status}; the cancellation fee is {amount}.|"
            "That's {status}. There's a fee of {amount}.",
            [not_found("booking number")],
        ),
    ],
    [
        fact(
            "Cars with child seats need 24 hours' notice.",
            "do you have child seats?|can I get a car seat for my son?",
            "Yes, with 24 hours' notice we can send a car with a child seat.",
        ),
        fact(
            "The fare to the airport from the city centre is a flat 45 dollars.",
            "how much is it to the airport?|what's the airport fare?",
            "It's a flat 45 dollars from the city centre to the airport.",
        ),
    ],
    "Have a safe trip!",
)


TICKETS = domain(
    "tickets",
    "a concert hall box office|a ticket office for live music|a theatre box office",
    "{place} Concert Hall|The {adj} Room|{place} Arena Box Office|{last} Theatre",
    [
        tool(
            "buy_tickets|book_tickets|reserve_seats|order_tickets",
            "Buy tickets for a show.|Reserve seats for an event.",
            "sell tickets",
            "I'd like to buy tickets|can I get tickets for a show|I want to book some seats",
            [
                arg(
                    "choice",
                    "show|event|performance",
                    "for {v}|to see {v}|tickets for {v}",
                    "Which show would you like?|What event are you booking?",
                    options={
                        "jazz_night": "jazz night|the jazz night",
                        "symphony": "the symphony|the orchestra",
                        "comedy": "the comedy show|stand-up comedy",
                        "tribute_band": "the tribute band|the tribute concert",
                        "musical": "the musical",
                    },
                ),
                arg(
                    "count",
                    "tickets|quantity|seats|number_of_tickets",
                    "{v} tickets|for {v} people|{v} seats",
                    "How many tickets?",
                    lo=1,
                    hi=8,
                ),
                day_arg("day|date_day|night"),
                name_arg("name|buyer_name", 0.5),
            ],
            [
                out("ref", "order_id|order|booking", fmt="Tdddddd|dddddd|TKdddd"),
                out("amount", "total|price"),
                out("echo", "night", slot="weekday"),
            ],
            "That's {count} tickets for {weekday}, {amount} in total; your order number is {ref}.|"
            "Booked for {weekday}. The total is {amount} and the order number is {ref}.",
            [
                err(
                    "sold out that night",
                    "I'm sorry, {weekday} is sold out. Would another night work?",
                    fix="weekday",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
        tool(
            "order_status|check_order|find_order",
            "Look up a ticket order.",
            "check ticket orders",
            "I haven't got my tickets yet|can you check my ticket order|I never received my tickets",
            [ref_arg("order_id|order_number", "order number", "Tdddddd|dddddd")],
            [
                out("status", "status", values="emailed|ready at the box office|pending"),
                out("date", "show_date|date"),
            ],
            "Order {id} is {status}, for the show on {date}.|Your tickets are {status}; the show is {date}.",
            [not_found("order number")],
        ),
    ],
    [
        fact(
            "Doors open one hour before the show.",
            "when do doors open?|what time should we get there?",
            "Doors open an hour before the show.",
        ),
        fact(
            "Tickets are non-refundable but can be exchanged.",
            "can I get a refund?|what if I can't go?",
            "Tickets can't be refunded, but you can exchange them.",
        ),
    ],
    "Enjoy the show!",
)


DRY_CLEANING = domain(
    "dry_cleaning",
    "a dry cleaner|a laundry and dry cleaning service",
    "{place} Dry Cleaners|{adj} Press|{last}'s Laundry|Fresh{noun} Cleaners",
    [
        tool(
            "schedule_pickup|book_collection|arrange_pickup",
            "Book a collection of clothes from an address.",
            "arrange pickups",
            "can you pick up some dry cleaning|I'd like a collection|could someone collect my laundry",
            [
                arg(
                    "address",
                    "address|pickup_address|street_address",
                    "from {v}|at {v}|My address is {v}.",
                    "What's the address?",
                ),
                day_arg("day|collection_day|pickup_day"),
                arg("time", "time|pickup_time", TIME_SAY, lo=8, hi=19, required=0.5),
            ],
            [out("ref", "ticket|pickup_id", fmt="Ddddd|dddddd"), out("echo", "day", slot="weekday")],
            "We'll collect on {weekday}; your ticket number is {ref}.|Booked for {weekday}, ticket {ref}.",
        ),
        tool(
            "order_ready|check_ticket|garment_status",
            "Check if an order is ready.",
            "check if orders are ready",
            "is my dry cleaning ready?|can I pick up my suit yet?|I wanted to check on my order",
            [ref_arg("ticket|ticket_number|order", "ticket number", "Ddddd|dddddd")],
            [
                out("status", "status", values="ready|being cleaned|at the pressing stage"),
                out("date", "ready_on|ready"),
                out("amount", "balance|to_pay", lo=8, hi=60),
            ],
            "Ticket {id} is {status}; it'll be ready {date} and the balance is {amount}.|"
            "It's {status}. Expect it on {date}, {amount} to pay.",
            [not_found("ticket number")],
        ),
    ],
    [
        fact(
            "Wedding dresses take two weeks.",
            "how long for a wedding dress?",
            "A wedding dress takes about two weeks.",
        )
    ],
)


SCHOOL = domain(
    "school",
    "a primary school office|a secondary school admissions office|a language school",
    "{place} Primary School|{place} Academy|{last} School|{place} Language Centre",
    [
        tool(
            "book_tour|schedule_visit|register_open_day",
            "Book a family onto a school tour.",
            "book school tours",
            "we'd like to visit the school|can we book a tour|I want to come to the open day",
            [
                name_arg("parent_name|name|guardian_name", 1.0),
                arg(
                    "count",
                    "year_group|grade|year",
                    "for year {v}|going into grade {v}|for grade {v}",
                    "What year group is your child going into?",
                    lo=1,
                    hi=12,
                    required=0.6,
                ),
                day_arg(),
                arg("time", "time|tour_time", TIME_SAY, lo=9, hi=15, required=0.4),
            ],
            [
                out("status", "status", values="booked|confirmed"),
                out("echo", "day", slot="weekday"),
                out("echo", "start|starts_at", slot="time"),
            ],
            "You're {status} for the tour on {weekday} at {time}.|"
            "Great, the tour is {weekday}, starting at {time}.",
            [
                err(
                    "tour full",
                    "That tour on {weekday} is full. Would a different day suit you?",
                    fix="weekday",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
        tool(
            "application_status|check_application|enrolment_status",
            "Check an enrolment application.",
            "check applications",
            "I'm calling about my child's application|has our application been processed|"
            "I wanted to check an enrolment",
            [
                ref_arg(
                    "application_id|application_number|reference",
                    "application number",
                    "APPdddd|Edddddd|dddddd",
                )
            ],
            [
                out("status", "status", values="offer made|on the waiting list|under review"),
                out("date", "decision_by|updated"),
            ],
            "Application {id}: {status}, with a decision by {date}.|It's {status}; you'll hear by {date}.",
            [not_found("application number")],
        ),
    ],
    [
        fact(
            "School uniform can be bought at the front office.",
            "where do we buy the uniform?",
            "You can buy the uniform at the front office.",
        ),
        fact(
            "The school day runs from 8:45 am to 3:15 pm.",
            "what time does school start?|when does the day finish?",
            "The day runs from 8:45 in the morning to 3:15 in the afternoon.",
        ),
    ],
)


MOVING = domain(
    "moving",
    "a removals company|a moving and storage company",
    "{place} Removals|{adj} Movers|{last} and Sons Moving|{place} Van Lines",
    [
        tool(
            "request_quote|get_quote|estimate_move",
            "Quote a house move.|Estimate the cost of a move between two postcodes.",
            "give moving quotes",
            "I'd like a quote for a move|how much would it cost to move house|I'm moving and need a price",
            [
                arg(
                    "postcode",
                    "from_postcode|origin|from_zip",
                    "from {v}|we're in {v}|moving out of {v}",
                    "What's the postcode you're moving from?",
                    slot="from",
                ),
                arg(
                    "postcode",
                    "to_postcode|destination|to_zip",
                    "to {v}|going to {v}|moving to {v}",
                    "And the postcode you're moving to?",
                    slot="to",
                ),
                arg(
                    "date",
                    "move_date|date|moving_day",
                    "on {v}|for {v}|We move on {v}.",
                    "What's the moving date?",
                    required=0.7,
                ),
                arg(
                    "count",
                    "bedrooms|rooms|size",
                    "{v} bedrooms|a {v} bedroom place|It's {v} bedrooms.",
                    "How many bedrooms?",
                    lo=1,
                    hi=5,
                ),
            ],
            [
                out("amount", "quote|estimate|price", lo=400, hi=3000),
                out("ref", "quote_id|reference", fmt="Qdddd|dddddd"),
                out("count", "movers|crew_size", slot="crew", lo=2, hi=5),
            ],
            "The quote is {amount} with a crew of {crew}; the quote reference is {ref}.|"
            "That comes to {amount}. Reference {ref}.",
            [
                err(
                    "fully booked on that date",
                    "We're fully booked on {date}. Is there another date you could move?",
                    fix="date",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
        tool(
            "book_callback|request_callback|call_me_back",
            "Book a call back from a moving coordinator.",
            "book callbacks with a coordinator",
            "can someone call me back?|I'd like a coordinator to ring me|could I get a call back",
            [
                arg(
                    "phone",
                    "phone|phone_number|callback_number",
                    "on {v}|my number is {v}|You can reach me on {v}.",
                    "What number should we call?",
                ),
                name_arg("name|contact_name", 0.6),
            ],
            [out("time", "call_at|callback_time"), out("status", "status", values="scheduled|booked")],
            "A coordinator will call you at {time}.|Done, expect a call at {time}.",
        ),
    ],
    [
        fact(
            "Packing materials are included in every quote.",
            "do you bring boxes?|is packing included?",
            "Yes, boxes and packing materials are included.",
        )
    ],
)


PLUMBER = domain(
    "home_repairs",
    "a plumbing and heating company|a handyman service|an electrician's office",
    "{last} Plumbing|{place} Heating|{adj} Handyman|{place} Electric",
    [
        tool(
            "book_callout|book_job|request_visit|schedule_repair",
            "Send a tradesperson to an address.",
            "book home repair visits",
            "I need a plumber|can someone come fix my boiler|I've got a leak and need someone out|"
            "my heating's broken",
            [
                arg(
                    "address",
                    "address|job_address|property",
                    "at {v}|I'm at {v}|The address is {v}.",
                    "What's the address?",
                ),
                arg(
                    "reason",
                    "problem|issue|job_description",
                    "{v}|the thing is {v}|So {v}.",
                    "What's the problem?|Can you describe the issue?",
                    phrases="the kitchen sink is leaking|there's no hot water|the boiler keeps cutting out|"
                    "a radiator is cold|the toilet won't stop running",
                ),
                day_arg("day|visit_day"),
                arg(
                    "phone",
                    "phone|contact_number",
                    "my number is {v}|call me on {v}",
                    "What's the best number for you?",
                    required=0.4,
                ),
            ],
            [
                out("ref", "job_id|reference", fmt="Jdddd|dddddd"),
                out("echo", "day", slot="weekday"),
                out("amount", "callout_fee|fee", lo=5, hi=60),
            ],
            "Someone will come on {weekday}; the job number is {ref} and the call-out fee is {amount}.|"
            "Booked for {weekday}, reference {ref}. The call-out fee is {amount}.",
            [
                err(
                    "no one free that day",
                    "We're fully booked on {weekday}. Could another day work?",
                    fix="weekday",
                    retry=NO_SLOT_RETRY,
                )
            ],
        ),
    ],
    [
        fact(
            "Emergency call-outs are available 24 hours a day.",
            "do you do emergencies?|can someone come at night?",
            "Yes, emergency call-outs are available around the clock.",
        )
    ],
)

BOOKINGS = (
    RESTAURANT,
    HOTEL,
    GARAGE,
    GYM,
    TAXI,
    TICKETS,
    DRY_CLEANING,
    SCHOOL,
    MOVING,
    PLUMBER,
)
