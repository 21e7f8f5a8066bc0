"""Where simulated users live: real cities, great-circle distances and small location jitter.

Homes sit near real cities so that distances (and so the impossible-travel rule) behave as they would
with geo-IP data; every login carries a position jittered by a few kilometres, as geo-IP does.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class City:
    name: str
    country: str  # ISO 3166-1 alpha-2
    lat: float
    lon: float
    utc_offset_h: float  # standard time; daylight saving is ignored
    weight: float  # relative share of the user base living there


CITIES: tuple[City, ...] = (
    City("New York", "US", 40.7128, -74.0060, -5, 8),
    City("Los Angeles", "US", 34.0522, -118.2437, -8, 6),
    City("Chicago", "US", 41.8781, -87.6298, -6, 4),
    City("San Francisco", "US", 37.7749, -122.4194, -8, 3),
    City("Boston", "US", 42.3601, -71.0589, -5, 2),
    City("Washington", "US", 38.9072, -77.0369, -5, 2),
    City("Toronto", "CA", 43.6532, -79.3832, -5, 3),
    City("Vancouver", "CA", 49.2827, -123.1207, -8, 1.5),
    City("Mexico City", "MX", 19.4326, -99.1332, -6, 3),
    City("Sao Paulo", "BR", -23.5505, -46.6333, -3, 4),
    City("Rio de Janeiro", "BR", -22.9068, -43.1729, -3, 2),
    City("Buenos Aires", "AR", -34.6037, -58.3816, -3, 2),
    City("London", "GB", 51.5074, -0.1278, 0, 7),
    City("Manchester", "GB", 53.4808, -2.2426, 0, 2),
    City("Dublin", "IE", 53.3498, -6.2603, 0, 1.5),
    City("Paris", "FR", 48.8566, 2.3522, 1, 5),
    City("Lyon", "FR", 45.7640, 4.8357, 1, 1.5),
    City("Berlin", "DE", 52.5200, 13.4050, 1, 5),
    City("Munich", "DE", 48.1351, 11.5820, 1, 3),
    City("Hamburg", "DE", 53.5511, 9.9937, 1, 2),
    City("Amsterdam", "NL", 52.3676, 4.9041, 1, 2.5),
    City("Madrid", "ES", 40.4168, -3.7038, 1, 3),
    City("Barcelona", "ES", 41.3874, 2.1686, 1, 2.5),
    City("Rome", "IT", 41.9028, 12.4964, 1, 2.5),
    City("Milan", "IT", 45.4642, 9.1900, 1, 2.5),
    City("Warsaw", "PL", 52.2297, 21.0122, 1, 2),
    City("Stockholm", "SE", 59.3293, 18.0686, 1, 1.5),
    City("Vienna", "AT", 48.2082, 16.3738, 1, 1.5),
    City("Zurich", "CH", 47.3769, 8.5417, 1, 1),
    City("Istanbul", "TR", 41.0082, 28.9784, 3, 3),
    City("Cairo", "EG", 30.0444, 31.2357, 2, 2),
    City("Lagos", "NG", 6.5244, 3.3792, 1, 2),
    City("Nairobi", "KE", -1.2921, 36.8219, 3, 1),
    City("Johannesburg", "ZA", -26.2041, 28.0473, 2, 1.5),
    City("Dubai", "AE", 25.2048, 55.2708, 4, 1.5),
    City("Mumbai", "IN", 19.0760, 72.8777, 5.5, 4),
    City("Delhi", "IN", 28.7041, 77.1025, 5.5, 4),
    City("Bangalore", "IN", 12.9716, 77.5946, 5.5, 3),
    City("Singapore", "SG", 1.3521, 103.8198, 8, 2),
    City("Jakarta", "ID", -6.2088, 106.8456, 7, 2.5),
    City("Hong Kong", "HK", 22.3193, 114.1694, 8, 2),
    City("Shanghai", "CN", 31.2304, 121.4737, 8, 2),
    City("Seoul", "KR", 37.5665, 126.9780, 9, 3),
    City("Tokyo", "JP", 35.6762, 139.6503, 9, 4),
    City("Osaka", "JP", 34.6937, 135.5023, 9, 2),
    City("Sydney", "AU", -33.8688, 151.2093, 10, 2.5),
    City("Melbourne", "AU", -37.8136, 144.9631, 10, 2),
    City("Auckland", "NZ", -36.8485, 174.7633, 12, 1),
)
CITY_WEIGHTS: tuple[float, ...] = tuple(c.weight for c in CITIES)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance, the same measure the impossible-travel rule applies."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def destination(lat: float, lon: float, distance_km: float, bearing_deg: float) -> tuple[float, float]:
    """The point `distance_km` away from (lat, lon) along `bearing_deg`, on a sphere."""
    d = distance_km / EARTH_RADIUS_KM
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def jitter(rng: random.Random, lat: float, lon: float, max_km: float) -> tuple[float, float]:
    """A point uniformly within `max_km` of (lat, lon), rounded to 4 decimals (about 10 m)."""
    r = max_km * math.sqrt(rng.random())
    lat2, lon2 = destination(lat, lon, r, rng.uniform(0.0, 360.0))
    return round(lat2, 4), round(lon2, 4)
