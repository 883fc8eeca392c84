"""Static word lists of the synthetic shop: category tree, brands, colours, materials, sizes and query phrasings.

Real category names make demos and generated queries read like a real shop's; brand names are invented (so no real
company is tied to random prices). Nothing here is random: the generator draws from these lists with its seed.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple


class LeafSpec(NamedTuple):
    """A leaf category: its plural name, typical mid-tier price, which attributes apply, and how shoppers say it."""

    name: str  # as shown in the tree, usually plural: "Running Shoes"
    base_price: float  # typical price of a mid-tier brand's item
    attributes: str = ""  # c=colour, s=size, m=material, g=gender apply; p=title uses the plural (pairs)
    sizes: str = ""  # key into SIZE_SYSTEMS when 's' applies
    singular: str = ""  # title noun and singular query form; derived from `name` when empty
    synonyms: Tuple[str, ...] = ()  # other words shoppers type for the same thing
    materials: Tuple[str, ...] = ()  # overrides the subcategory's materials when 'm' applies


class SubcategorySpec(NamedTuple):
    name: str
    materials: Tuple[str, ...]  # default materials of its leaves with 'm'
    leaves: Tuple[LeafSpec, ...]


class DepartmentSpec(NamedTuple):
    name: str
    subcategories: Tuple[SubcategorySpec, ...]
    title_style: str = "product"  # "product": brand + attributes + noun + model; "book": invented book title


class BrandSpec(NamedTuple):
    name: str
    departments: Tuple[str, ...]  # one or two department names it sells in
    tier: str  # key into BRAND_TIERS


L, S, D = LeafSpec, SubcategorySpec, DepartmentSpec

DEPARTMENTS: Tuple[DepartmentSpec, ...] = (
    D("Clothing", (
        S("Tops", ("Cotton", "Linen", "Wool", "Polyester", "Fleece"), (
            L("T-Shirts", 20, "csmg", "apparel", synonyms=("tees",)),
            L("Shirts", 35, "csmg", "apparel"),
            L("Sweaters", 45, "csmg", "apparel", synonyms=("jumpers",)),
            L("Hoodies", 40, "csmg", "apparel", synonyms=("sweatshirts",), singular="Hoodie",
              materials=("Cotton", "Fleece", "Polyester")))),
        S("Bottoms", ("Denim", "Cotton", "Nylon", "Spandex"), (
            L("Jeans", 50, "csmg", "apparel", singular="Jeans", materials=("Denim", "Stretch Denim", "Organic Cotton")),
            L("Shorts", 25, "csmg", "apparel", singular="Shorts", materials=("Denim", "Cotton", "Nylon")),
            L("Leggings", 30, "csmg", "apparel", singular="Leggings", materials=("Cotton", "Spandex", "Nylon")))),
        S("Outerwear", ("Down", "Wool", "Nylon", "Leather"), (
            L("Jackets", 90, "csmg", "apparel", materials=("Leather", "Denim", "Nylon", "Down")),
            L("Raincoats", 70, "csg", "apparel"),
            L("Winter Coats", 140, "csmg", "apparel", synonyms=("parkas",), materials=("Down", "Wool")))),
        S("Shoes", ("Mesh", "Leather", "Suede", "Canvas", "Knit"), (
            L("Running Shoes", 90, "csmgp", "shoe", synonyms=("running sneakers",)),
            L("Sneakers", 70, "csmgp", "shoe", synonyms=("trainers",)),
            L("Boots", 110, "csmgp", "shoe"),
            L("Sandals", 35, "csmgp", "shoe"))),
        S("Accessories", ("Leather", "Cotton", "Straw", "Acetate"), (
            L("Hats", 20, "cmg", materials=("Cotton", "Straw", "Wool")),
            L("Belts", 25, "cmg", materials=("Leather", "Canvas")),
            L("Sunglasses", 60, "cg", singular="Sunglasses"))),
    )),
    D("Electronics", (
        S("Audio", (), (
            L("Headphones", 80, "c", singular="Headphones", synonyms=("headset",)),
            L("Earbuds", 60, "c", singular="Earbuds", synonyms=("wireless earphones",)),
            L("Bluetooth Speakers", 70, "c"),
            L("Soundbars", 180, "c"))),
        S("Computers", (), (
            L("Laptops", 800, "cs", "screen", synonyms=("notebooks",)),
            L("Monitors", 250, "s", "screen"),
            L("Keyboards", 60, "c"),
            L("Computer Mice", 30, "c", singular="Computer Mouse"))),
        S("Phones & Tablets", ("Silicone", "Leather", "Plastic"), (
            L("Smartphones", 500, "c", synonyms=("cell phones",)),
            L("Tablets", 350, "cs", "screen"),
            L("Phone Cases", 18, "cm"),
            L("Chargers", 20, ""))),
        S("Cameras", (), (
            L("Digital Cameras", 450, "c"),
            L("Action Cameras", 250, "c"),
            L("Camera Lenses", 400, ""))),
    )),
    D("Home", (
        S("Kitchen", ("Stainless Steel", "Ceramic", "Cast Iron", "Glass", "Plastic"), (
            L("Coffee Makers", 80, "cm", synonyms=("coffee machines",),
              materials=("Stainless Steel", "Plastic", "Glass")),
            L("Blenders", 60, "cm", materials=("Glass", "Plastic", "Stainless Steel")),
            L("Cookware Sets", 120, "cm", synonyms=("pots and pans",),
              materials=("Stainless Steel", "Cast Iron", "Nonstick", "Ceramic")),
            L("Knife Sets", 70, "m", materials=("Stainless Steel", "Ceramic", "Carbon Steel")),
            L("Toasters", 40, "cm", materials=("Stainless Steel", "Plastic")))),
        S("Bedding", ("Cotton", "Linen", "Microfiber", "Bamboo", "Memory Foam"), (
            L("Sheet Sets", 50, "csm", "bedding", synonyms=("bed sheets",),
              materials=("Cotton", "Linen", "Microfiber", "Bamboo")),
            L("Pillows", 30, "sm", "bedding", materials=("Memory Foam", "Down", "Cotton")),
            L("Comforters", 90, "csm", "bedding", synonyms=("duvets",), materials=("Down", "Cotton", "Microfiber")),
            L("Blankets", 40, "cm", materials=("Fleece", "Wool", "Cotton")))),
        S("Furniture", ("Oak", "Walnut", "Metal", "Fabric", "Leather"), (
            L("Office Chairs", 180, "cm", synonyms=("desk chairs",), materials=("Mesh", "Leather", "Fabric")),
            L("Desks", 220, "cm", materials=("Oak", "Walnut", "Metal")),
            L("Bookshelves", 110, "cm", singular="Bookshelf", materials=("Oak", "Walnut", "Metal")),
            L("Sofas", 700, "cm", synonyms=("couches",), materials=("Fabric", "Leather", "Velvet")))),
        S("Decor", ("Ceramic", "Glass", "Wool", "Brass"), (
            L("Lamps", 45, "cm", materials=("Ceramic", "Glass", "Brass", "Metal")),
            L("Rugs", 120, "cm", materials=("Wool", "Jute", "Cotton")),
            L("Wall Art", 50, "c", singular="Wall Art"),
            L("Candles", 18, "c"))),
    )),
    D("Sports & Outdoors", (
        S("Fitness", ("Rubber", "Foam", "Steel", "Latex"), (
            L("Yoga Mats", 30, "cm", materials=("Rubber", "Foam", "Cork")),
            L("Dumbbells", 50, "m", materials=("Steel", "Rubber", "Neoprene")),
            L("Resistance Bands", 20, "c"),
            L("Exercise Bikes", 400, ""))),
        S("Camping", ("Nylon", "Polyester", "Aluminum"), (
            L("Tents", 150, "cm", materials=("Nylon", "Polyester")),
            L("Sleeping Bags", 80, "cm", materials=("Down", "Polyester")),
            L("Camping Stoves", 60, ""),
            L("Headlamps", 25, "c"))),
        S("Cycling", ("Carbon", "Aluminum", "Steel"), (
            L("Road Bikes", 900, "cm", materials=("Carbon", "Aluminum", "Steel")),
            L("Bike Helmets", 60, "csg", "apparel"),
            L("Bike Lights", 30, ""))),
        S("Team Sports", ("Leather", "Synthetic", "Graphite"), (
            L("Soccer Balls", 25, "c", synonyms=("footballs",)),
            L("Basketballs", 30, ""),
            L("Tennis Rackets", 90, "m", materials=("Graphite", "Aluminum")))),
    )),
    D("Beauty & Personal Care", (
        S("Skincare", (), (
            L("Moisturizers", 25, "s", "volume", synonyms=("face cream",)),
            L("Cleansers", 15, "s", "volume", synonyms=("face wash",)),
            L("Sunscreen", 14, "s", "volume", synonyms=("spf",)),
            L("Serums", 35, "s", "volume"))),
        S("Makeup", (), (
            L("Lipstick", 18, "c"),
            L("Mascara", 15, "c"),
            L("Foundation", 30, ""))),
        S("Hair Care", (), (
            L("Shampoo", 12, "s", "volume"),
            L("Conditioner", 12, "s", "volume"),
            L("Hair Dryers", 70, "c", synonyms=("blow dryers",)))),
        S("Fragrance", (), (
            L("Perfume", 70, "sg", "volume"),
            L("Cologne", 65, "sg", "volume"))),
    )),
    D("Toys & Games", (
        S("Building Toys", ("Plastic", "Wood", "Magnetic"), (
            L("Building Sets", 45, "m", synonyms=("building blocks",)),
            L("Marble Runs", 35, "m"))),
        S("Board Games", (), (
            L("Strategy Games", 40, ""),
            L("Family Games", 25, ""),
            L("Jigsaw Puzzles", 20, "", synonyms=("puzzles",)))),
        S("Dolls & Figures", (), (
            L("Action Figures", 20, ""),
            L("Dolls", 25, ""),
            L("Plush Toys", 18, "c", synonyms=("stuffed animals",)))),
        S("Outdoor Play", (), (
            L("Kids Scooters", 70, "c"),
            L("Water Guns", 15, "c"),
            L("Kites", 20, "c"))),
    )),
    D("Books", (
        S("Fiction", ("Paperback", "Hardcover"), (
            L("Mystery Novels", 15, "m", synonyms=("thrillers",)),
            L("Science Fiction Novels", 16, "m", synonyms=("sci-fi books",)),
            L("Romance Novels", 12, "m"),
            L("Fantasy Novels", 17, "m"))),
        S("Non-Fiction", ("Paperback", "Hardcover"), (
            L("Cookbooks", 25, "m", synonyms=("recipe books",)),
            L("Biographies", 20, "m"),
            L("Self-Help Books", 16, "m"))),
        S("Children's Books", ("Paperback", "Board Book"), (
            L("Picture Books", 10, "m"),
            L("Activity Books", 8, "m"))),
    ), title_style="book"),
    D("Pet Supplies", (
        S("Dogs", ("Nylon", "Leather", "Rubber", "Plush"), (
            L("Dog Food", 45, "", synonyms=("dog kibble",)),
            L("Dog Beds", 55, "csm", "pet", materials=("Plush", "Fleece", "Nylon")),
            L("Dog Toys", 12, "cm", materials=("Rubber", "Plush", "Nylon")),
            L("Dog Leashes", 18, "csm", "pet", materials=("Nylon", "Leather")))),
        S("Cats", ("Sisal", "Plush", "Wood"), (
            L("Cat Food", 35, ""),
            L("Cat Litter", 20, ""),
            L("Cat Trees", 80, "cm", materials=("Sisal", "Wood")),
            L("Cat Toys", 10, "c"))),
        S("Aquarium", ("Glass", "Acrylic"), (
            L("Aquariums", 120, "m", synonyms=("fish tanks",)),
            L("Fish Food", 8, ""))),
    )),
)

# Price multipliers of brand tiers: an item's price is leaf base price x tier multiplier x noise.
BRAND_TIERS = {"budget": 0.65, "mid": 1.0, "premium": 1.6, "luxury": 2.6}

B = BrandSpec
BRANDS: Tuple[BrandSpec, ...] = (
    B("Northwind", ("Clothing", "Sports & Outdoors"), "mid"),
    B("Strideon", ("Clothing", "Sports & Outdoors"), "premium"),
    B("Velora", ("Clothing", "Beauty & Personal Care"), "luxury"),
    B("Basicly", ("Clothing", "Home"), "budget"),
    B("Urban Thread", ("Clothing",), "mid"),
    B("Maison Clair", ("Clothing", "Beauty & Personal Care"), "luxury"),
    B("Trailform", ("Clothing", "Sports & Outdoors"), "premium"),
    B("Kidora", ("Clothing", "Toys & Games"), "budget"),
    B("Auralux", ("Electronics",), "premium"),
    B("Voltix", ("Electronics",), "budget"),
    B("Nexon", ("Electronics",), "mid"),
    B("Pixelon", ("Electronics",), "premium"),
    B("Sonara", ("Electronics", "Home"), "mid"),
    B("Orbitek", ("Electronics",), "budget"),
    B("Lumea", ("Electronics", "Home"), "premium"),
    B("Brewcraft", ("Home",), "mid"),
    B("Casa Verde", ("Home",), "mid"),
    B("Hearthstone", ("Home",), "premium"),
    B("Nestwell", ("Home", "Pet Supplies"), "budget"),
    B("Oakline", ("Home",), "luxury"),
    B("Kitchara", ("Home",), "budget"),
    B("Peakline", ("Sports & Outdoors", "Clothing"), "premium"),
    B("Ironform", ("Sports & Outdoors",), "mid"),
    B("Velocita", ("Sports & Outdoors",), "luxury"),
    B("Campfire Co", ("Sports & Outdoors",), "budget"),
    B("Goalpro", ("Sports & Outdoors", "Toys & Games"), "budget"),
    B("Glowry", ("Beauty & Personal Care",), "mid"),
    B("Purelle", ("Beauty & Personal Care",), "budget"),
    B("Aurelia", ("Beauty & Personal Care",), "luxury"),
    B("Dermacore", ("Beauty & Personal Care",), "premium"),
    B("Silkroot", ("Beauty & Personal Care",), "mid"),
    B("Brickle", ("Toys & Games",), "mid"),
    B("Playnest", ("Toys & Games",), "budget"),
    B("Wonderbox", ("Toys & Games", "Books"), "mid"),
    B("Tinytown", ("Toys & Games",), "budget"),
    B("Meeple & Co", ("Toys & Games",), "premium"),
    B("Penwright Press", ("Books",), "mid"),
    B("Harbor House", ("Books",), "mid"),
    B("Lantern Books", ("Books",), "budget"),
    B("Northstar Publishing", ("Books",), "premium"),
    B("Pawsome", ("Pet Supplies",), "budget"),
    B("Furwell", ("Pet Supplies",), "mid"),
    B("Whiskerly", ("Pet Supplies",), "mid"),
    B("Barkley & Co", ("Pet Supplies",), "premium"),
    B("Aquanest", ("Pet Supplies",), "mid"),
)

# Colours with how common they are among products that come in colours.
COLORS: Tuple[Tuple[str, float], ...] = (
    ("black", 6.0), ("white", 4.0), ("grey", 3.0), ("navy", 2.0), ("blue", 2.5), ("red", 2.0), ("green", 1.5),
    ("beige", 1.5), ("brown", 1.5), ("pink", 1.2), ("purple", 0.8), ("yellow", 0.8), ("orange", 0.6),
    ("silver", 1.0), ("gold", 0.5),
)

# Item gender values, their share among gendered products, and the word a title uses.
GENDERS: Tuple[Tuple[str, float, str], ...] = (
    ("men", 0.38, "Men's"), ("women", 0.42, "Women's"), ("unisex", 0.12, "Unisex"), ("kids", 0.08, "Kids'"),
)

SIZE_SYSTEMS = {
    "apparel": ("XS", "S", "M", "L", "XL", "XXL"),
    "shoe": ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12", "13"),
    "screen": ('13"', '14"', '15"', '24"', '27"', '32"'),
    "bedding": ("Twin", "Full", "Queen", "King"),
    "volume": ("30 ml", "50 ml", "100 ml", "200 ml"),
    "pet": ("S", "M", "L", "XL"),
}

DEVICES = ("mobile", "desktop", "tablet")

# Product-line prefixes of model codes ("X200", "Pro 3"); each brand uses a couple of them.
MODEL_PREFIXES = ("X", "Pro ", "Air ", "HD-", "Max ", "V", "S", "Ultra ", "Flex ", "Go ", "Core ", "Lite ")

# Words of invented book titles: "The Silent Harbor", "A Winter of Glass".
BOOK_ADJECTIVES = ("Silent", "Hidden", "Last", "Golden", "Broken", "Secret", "Endless", "Quiet", "Burning", "Lost",
                   "Midnight", "Crimson", "Wild", "Distant", "Little")
BOOK_NOUNS = ("Harbor", "Garden", "Kingdom", "River", "Promise", "Station", "Orchard", "Letter", "Mountain", "Island",
              "Kitchen", "Voyage", "Lighthouse", "Forest", "Summer")

# How a shopper phrases slots in a query. Gender has forms used before the noun and after it.
GENDER_BEFORE_NOUN = {"men": ("men's", "mens", "men"), "women": ("women's", "womens", "women"),
                      "kids": ("kids", "kids'", "children's")}
GENDER_AFTER_NOUN = {"men": ("for men",), "women": ("for women",), "kids": ("for kids",)}
PRICE_MAX_PHRASES = ("under {a}", "under ${a}", "less than ${a}", "below {a}", "max ${a}")
PRICE_MIN_PHRASES = ("over {a}", "above ${a}", "more than ${a}")
PRICE_RANGE_PHRASES = ("between {a} and {b}", "between ${a} and ${b}", "${a}-${b}", "from {a} to {b}")
QUERY_FILLERS = ("best", "new", "top rated", "buy", "sale")


def singular(leaf: LeafSpec) -> str:
    """The singular noun of a leaf ("Coffee Makers" -> "Coffee Maker"), for titles and singular queries."""
    if leaf.singular:
        return leaf.singular
    head, _, last = leaf.name.rpartition(" ")
    if last.endswith("ies"):
        last = last[:-3] + "y"
    elif last.endswith(("ches", "shes", "sses", "xes")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith("ss"):
        last = last[:-1]
    return f"{head} {last}" if head else last
