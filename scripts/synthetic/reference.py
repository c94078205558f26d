"""Reference data: areas and their suburbs, occasions, guest bands, the pricing matrix, and
the names, streets and notes the rows are made of. Plain data, the same for every scale and
seed; the tables derived from it for drawing are at the end."""

from __future__ import annotations

from .common import DAY, slug, weighted_table

# (area name, relative weight of leads and venues, [(suburb, state, postcode), ...])
AREAS: tuple[tuple[str, int, tuple[tuple[str, str, str], ...]], ...] = (
    ("CBD", 14, (("Melbourne", "VIC", "3000"), ("Southbank", "VIC", "3006"),
                 ("Docklands", "VIC", "3008"), ("East Melbourne", "VIC", "3002"),
                 ("West Melbourne", "VIC", "3003"))),
    ("Inner North", 14, (("Fitzroy", "VIC", "3065"), ("Collingwood", "VIC", "3066"),
                         ("Carlton", "VIC", "3053"), ("Brunswick", "VIC", "3056"),
                         ("Northcote", "VIC", "3070"), ("Fitzroy North", "VIC", "3068"),
                         ("Abbotsford", "VIC", "3067"), ("Thornbury", "VIC", "3071"),
                         ("Brunswick East", "VIC", "3057"), ("Carlton North", "VIC", "3054"))),
    ("Inner South", 12, (("South Yarra", "VIC", "3141"), ("Prahran", "VIC", "3181"),
                         ("Windsor", "VIC", "3181"), ("St Kilda", "VIC", "3182"),
                         ("South Melbourne", "VIC", "3205"), ("Port Melbourne", "VIC", "3207"),
                         ("Albert Park", "VIC", "3206"), ("Elwood", "VIC", "3184"))),
    ("Inner East", 9, (("Richmond", "VIC", "3121"), ("Hawthorn", "VIC", "3122"),
                       ("Kew", "VIC", "3101"), ("Camberwell", "VIC", "3124"),
                       ("Cremorne", "VIC", "3121"))),
    ("Northern Suburbs", 6, (("Coburg", "VIC", "3058"), ("Preston", "VIC", "3072"),
                             ("Reservoir", "VIC", "3073"), ("Essendon", "VIC", "3040"),
                             ("Moonee Ponds", "VIC", "3039"), ("Pascoe Vale", "VIC", "3044"),
                             ("Bundoora", "VIC", "3083"))),
    ("Western Suburbs", 6, (("Footscray", "VIC", "3011"), ("Yarraville", "VIC", "3013"),
                            ("Williamstown", "VIC", "3016"), ("Seddon", "VIC", "3011"),
                            ("Sunshine", "VIC", "3020"), ("Werribee", "VIC", "3030"),
                            ("Kensington", "VIC", "3031"))),
    ("Eastern Suburbs", 6, (("Box Hill", "VIC", "3128"), ("Doncaster", "VIC", "3108"),
                            ("Ringwood", "VIC", "3134"), ("Glen Waverley", "VIC", "3150"),
                            ("Blackburn", "VIC", "3130"), ("Balwyn", "VIC", "3103"))),
    ("South East", 6, (("Caulfield", "VIC", "3162"), ("Malvern", "VIC", "3144"),
                       ("Oakleigh", "VIC", "3166"), ("Dandenong", "VIC", "3175"),
                       ("Clayton", "VIC", "3168"), ("Chadstone", "VIC", "3148"),
                       ("Bentleigh", "VIC", "3204"))),
    ("Bayside", 7, (("Brighton", "VIC", "3186"), ("Sandringham", "VIC", "3191"),
                    ("Hampton", "VIC", "3188"), ("Black Rock", "VIC", "3193"),
                    ("Mentone", "VIC", "3194"), ("Mordialloc", "VIC", "3195"),
                    ("Beaumaris", "VIC", "3193"))),
    ("Mornington Peninsula", 5, (("Mornington", "VIC", "3931"), ("Frankston", "VIC", "3199"),
                                 ("Sorrento", "VIC", "3943"), ("Rosebud", "VIC", "3939"),
                                 ("Red Hill", "VIC", "3937"), ("Portsea", "VIC", "3944"),
                                 ("Mount Martha", "VIC", "3934"))),
    ("Yarra Valley", 4, (("Healesville", "VIC", "3777"), ("Yarra Glen", "VIC", "3775"),
                         ("Lilydale", "VIC", "3140"), ("Coldstream", "VIC", "3770"))),
    ("Dandenong Ranges", 2, (("Olinda", "VIC", "3788"), ("Belgrave", "VIC", "3160"),
                             ("Sassafras", "VIC", "3787"), ("Emerald", "VIC", "3782"))),
    ("Geelong & Bellarine", 4, (("Geelong", "VIC", "3220"), ("Torquay", "VIC", "3228"),
                                ("Queenscliff", "VIC", "3225"), ("Ocean Grove", "VIC", "3226"),
                                ("Newtown", "VIC", "3220"))),
    ("Sydney", 3, (("Surry Hills", "NSW", "2010"), ("Newtown", "NSW", "2042"),
                   ("Paddington", "NSW", "2021"), ("Bondi", "NSW", "2026"),
                   ("Sydney", "NSW", "2000"), ("Manly", "NSW", "2095"))),
    ("Brisbane", 2, (("Fortitude Valley", "QLD", "4006"), ("South Brisbane", "QLD", "4101"),
                     ("West End", "QLD", "4101"), ("Brisbane City", "QLD", "4000"),
                     ("New Farm", "QLD", "4005"))),
)  # fmt: skip

# (key, label, is_active, weight in 1/1000, tier). Tier picks the guest bands and prices.
OCCASIONS: tuple[tuple[str, str, int, int, str], ...] = (
    ("21st_birthday", "21st Birthday", 1, 140, "social"),
    ("18th_birthday", "18th Birthday", 1, 70, "social"),
    ("30th_birthday", "30th Birthday", 1, 90, "social"),
    ("40th_birthday", "40th Birthday", 1, 65, "social"),
    ("50th_birthday", "50th Birthday", 1, 55, "social"),
    ("60th_birthday", "60th Birthday", 1, 25, "social"),
    ("birthday_party", "Birthday Party", 1, 60, "social"),
    ("engagement_party", "Engagement Party", 1, 85, "premium"),
    ("wedding_reception", "Wedding Reception", 1, 70, "premium"),
    ("christmas_party", "Christmas Party", 1, 75, "corporate"),
    ("corporate_function", "Corporate Function", 1, 75, "corporate"),
    ("farewell", "Farewell", 1, 35, "social"),
    ("baby_shower", "Baby Shower", 1, 25, "social"),
    ("hens_party", "Hens Party", 1, 20, "social"),
    ("cocktail_party", "Cocktail Party", 1, 25, "social"),
    ("product_launch", "Product Launch", 1, 15, "corporate"),
    ("graduation", "Graduation Party", 1, 15, "social"),
    ("anniversary", "Anniversary", 1, 15, "premium"),
    ("wake", "Wake / Memorial", 1, 10, "social"),
    ("school_reunion", "School Reunion", 0, 5, "social"),
)
# Keys the app still accepts from old forms but that have no occasion_types row.
ABSENT_OCCASIONS: tuple[tuple[str, int, str], ...] = (
    ("bucks_night", 10, "social"),
    ("high_tea", 5, "social"),
)

# (display, low, high); the form's guest-count ranges.
GUEST_BANDS: tuple[tuple[str, int, int], ...] = (
    ("10-20", 10, 20), ("20-30", 20, 30), ("30-50", 30, 50), ("50-80", 50, 80),
    ("80-100", 80, 100), ("100-150", 100, 150), ("150-200", 150, 200), ("200-300", 200, 300),
    ("300+", 300, 500),
)  # fmt: skip
BAND_WEIGHTS: dict[str, tuple[int, ...]] = {
    "social": (8, 16, 22, 22, 12, 11, 5, 3, 1),
    "premium": (1, 3, 8, 16, 17, 22, 17, 11, 5),
    "corporate": (2, 6, 14, 20, 16, 18, 12, 8, 4),
}
# Pricing matrix in whole dollars: tier x guest group (<=30, <=80, <=150, >150).
PRICE_MATRIX: dict[str, tuple[int, int, int, int]] = {
    "social": (12, 18, 25, 35),
    "premium": (20, 30, 40, 55),
    "corporate": (18, 25, 35, 45),
}
BAND_GROUP = (0, 0, 0, 1, 2, 2, 3, 3, 3)
# (hours since distribution, discount %) steps of the lead price.
DISCOUNT_STEPS: tuple[tuple[int, int], ...] = ((0, 0), (48, 10), (96, 20), (168, 30))
LEAD_LIFETIME = 14 * DAY

FIRST_NAMES = (
    "Olivia", "Charlotte", "Amelia", "Isla", "Mia", "Ava", "Grace", "Chloe", "Sophie", "Emily",
    "Ella", "Ruby", "Zoë", "Jack", "Oliver", "William", "Noah", "Thomas", "James", "Lachlan",
    "Liam", "Ethan", "Lucas", "Harrison", "Cooper", "Mitchell", "Priya", "Aarav", "Wei",
    "Mei", "Minh", "Linh", "Sarah", "Jessica", "Hannah", "Georgia", "Matilda", "Renée",
    "José", "Chloé", "Siobhan", "Nikolaos", "Eleni", "Giulia", "Marco", "Fatima", "Omar",
    "Ngaio", "Tane", "Kai",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
    "Anderson", "Thompson", "Nguyen", "Tran", "Le", "Chen", "Wang", "Li", "Zhang", "Singh",
    "Patel", "Kumar", "O'Brien", "O'Connor", "Kelly", "Murphy", "Ryan", "Walsh", "Papadopoulos",
    "Georgiou", "Rossi", "Russo", "Ferrari", "Müller", "Nguyễn", "Ahmed", "Hassan", "Kaur",
    "MacDonald", "McKenzie", "Campbell", "Stewart", "Robinson", "Clarke", "Hall", "Young",
    "King", "Wright", "Scott", "Green", "Baker",
)  # fmt: skip
EMAIL_DOMAINS = (
    "gmail.com", "gmail.com", "gmail.com", "hotmail.com", "outlook.com", "yahoo.com.au",
    "bigpond.com", "icloud.com", "live.com.au", "optusnet.com.au",
)  # fmt: skip
STREETS = (
    "Smith Street", "Brunswick Street", "Chapel Street", "Lygon Street", "Collins Street",
    "Flinders Lane", "Sydney Road", "High Street", "Swan Street", "Acland Street",
    "Glenferrie Road", "Bridge Road", "Johnston Street", "Gertrude Street", "Fitzroy Street",
    "Toorak Road", "Burke Road", "Church Street", "Victoria Street", "Nicholson Street",
    "Bay Street", "Main Street", "Station Street", "Beach Road", "Point Nepean Road",
)  # fmt: skip
VENUE_WORDS_A = (
    "The", "Little", "Old", "Grand", "Royal", "Lucky", "Golden", "Velvet", "Copper", "Hidden",
    "Laneway", "Rooftop", "Garden", "Harbour", "Southern", "Crown", "Union", "Electric",
)  # fmt: skip
VENUE_WORDS_B = (
    "Fox", "Duke", "Oak", "Lantern", "Anchor", "Pearl", "Sparrow", "Library", "Terrace",
    "Cellar", "Lounge", "Social", "Exchange", "Mill", "Boathouse", "Conservatory", "Vault",
    "Alchemist", "Botanist", "Parlour",
)  # fmt: skip
VENUE_KINDS = (
    "Hotel", "Bar", "Rooftop Bar", "Events", "Function Centre", "Dining Room", "Wine Bar",
    "Brewery", "Pub", "Café", "Ballroom", "Estate", "Kitchen & Bar", "Distillery",
)  # fmt: skip
ROOM_NAMES = (
    "Main Bar", "Rooftop Terrace", "Function Room", "Private Dining Room", "Courtyard",
    "The Loft", "Garden Room", "Cellar", "Ballroom", "Mezzanine", "Beer Garden", "Library",
    "Lounge", "Whole Venue", "Boardroom", "Balcony",
)  # fmt: skip
# Keys of the app's room_styles config (not stored in the database).
ROOM_STYLES = (
    "cocktail", "sit_down", "banquet", "theatre", "boardroom", "outdoor", "lounge",
    "standing", "long_table",
)  # fmt: skip
STRIPE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
REFUND_NOTES = (
    "Customer cancelled the event.",
    "Duplicate enquiry.\nSame customer submitted twice.",
    "Contact details invalid (phone disconnected).",
    "Approved by ops\r\nVenue could not reach the customer.",
    "Goodwill refund \u2013 event date already booked.",
)
ADJUST_NOTES = (
    "Goodwill credit \u2013 venue double-charged",
    "Migration correction",
    "Promo credit: first month free leads",
    "Manual correction after Stripe dispute",
)


# ---- derived once, for drawing

# Index into AREAS, weighted by each area's share of leads and venues.
AREA_DRAW: list[int] = weighted_table(w for _n, w, _s in AREAS)
AREA_SUBURBS: list[tuple[tuple[str, str, str], ...]] = [subs for _n, _w, subs in AREAS]
FIRST_SLUGS: list[str] = [slug(n) for n in FIRST_NAMES]
LAST_SLUGS: list[str] = [slug(n) for n in LAST_NAMES]
