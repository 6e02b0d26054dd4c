"""Physical model of Chamchuri 5: one value a minute for every channel of a floor in a month.

Why a model and not noise: the pipeline's checks (working-hours load shape, AC cooling the zone it
serves, rainy-season humidity) only mean something against data that behaves like an office block.
Every random stream is keyed by (seed, month, floor, zone, channel), so a month is reproducible on
its own and adding a channel to a file never changes the values of the others.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.source.layout import parse_column

# Stream tags: one random stream per purpose, so changing one never shifts another.
WEATHER, SIGNALS, PARAMS, GAPS, EXTRA, DEFECTS, PLAN, FILES = range(1, 9)

MINUTES_PER_DAY = 1440

# Offices closed (Thai public holidays and their substitution days), 2018-07..2019-12.
HOLIDAYS = frozenset(
    date.fromisoformat(day)
    for day in (
        *("2018-07-27", "2018-07-30", "2018-08-13", "2018-10-15", "2018-10-23", "2018-12-05"),
        *("2018-12-10", "2018-12-31", "2019-01-01", "2019-02-19", "2019-04-08", "2019-04-15"),
        *("2019-04-16", "2019-05-06", "2019-05-20", "2019-06-03", "2019-07-16", "2019-07-29"),
        *("2019-08-12", "2019-10-14", "2019-10-23", "2019-12-05", "2019-12-10", "2019-12-31"),
    )
)

# Bangkok climate normals by calendar month: daily mean degC, half the diurnal range, mean RH%.
_MEAN_T = (27.0, 28.3, 29.5, 30.5, 30.1, 29.6, 29.2, 28.9, 28.4, 28.2, 27.7, 26.6)
_HALF_RANGE_T = (5.0, 4.5, 4.0, 4.0, 3.8, 3.3, 3.2, 3.2, 3.3, 3.4, 4.2, 5.0)
_MEAN_RH = (66.0, 70.0, 70.0, 71.0, 74.0, 75.0, 76.0, 77.0, 80.0, 80.0, 74.0, 68.0)

WORKDAY, SATURDAY, REST_DAY = 0, 1, 2

# Resolution the meters and sensors report at: the decimals of every written reading.
DECIMALS = {"kW": 2, "degC": 2, "RH%": 2, "lux": 1}

# Hard ceilings of the model, inside the plausible ranges the loader validates against.
_MAX_AC_KW = 15.0
_TEMPERATURE = (18.0, 36.0)
_HUMIDITY = (40.0, 85.0)
_MAX_LUX = 1500.0


def stream(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for one purpose; `seed` may be any int (folded to 64 bits)."""
    return np.random.default_rng([seed % 2**64, *keys])


def season(month: int) -> str:
    """Thai seasons: hot Mar-May, rainy Jun-Oct, cool Nov-Feb."""
    if 3 <= month <= 5:
        return "hot"
    return "rainy" if 6 <= month <= 10 else "cool"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _sun(hour: np.ndarray) -> np.ndarray:
    """Height of the sun, 0..1: Bangkok sunrise about 06:15, sunset about 18:30 all year."""
    return np.clip(np.sin(np.pi * (hour - 6.2) / 12.3), 0.0, None)


def _smooth(x: np.ndarray, tau: float) -> np.ndarray:
    """First-order lag (time constant `tau` minutes): how a room's air follows what drives it."""
    length = int(5 * tau)
    kernel = np.exp(-np.arange(length) / tau)
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(length - 1, x[0]), x])
    return np.convolve(padded, kernel, mode="valid")


@dataclass(frozen=True)
class Calendar:
    """Per-minute time features of one month in Bangkok local time, shared by all floors."""

    month: Month
    minutes: int
    day: np.ndarray  # day of month - 1, per minute
    hour: np.ndarray  # fractional hour of day, per minute
    day_type: np.ndarray  # WORKDAY / SATURDAY / REST_DAY, per day

    @property
    def days(self) -> int:
        return self.minutes // MINUTES_PER_DAY


def calendar(month: Month) -> Calendar:
    minutes = month.minutes
    t = np.arange(minutes)
    days = [month.first_day + timedelta(days=d) for d in range(minutes // MINUTES_PER_DAY)]
    day_type = np.array(
        [
            REST_DAY
            if d in HOLIDAYS or d.weekday() == 6
            else SATURDAY
            if d.weekday() == 5
            else WORKDAY
            for d in days
        ]
    )
    return Calendar(month, minutes, t // MINUTES_PER_DAY, (t % MINUTES_PER_DAY) / 60.0, day_type)


@dataclass(frozen=True)
class Weather:
    """Outdoor conditions over Bangkok for one month: the same for every floor."""

    temperature: np.ndarray  # degC per minute
    building: np.ndarray  # outdoor degC as the building's mass feels it: lagged by hours
    humidity: np.ndarray  # RH% per minute
    cloud: np.ndarray  # 0..1 per day


def weather(seed: int, cal: Calendar) -> Weather:
    """Seasonal normals + a persistent day-to-day anomaly + afternoon storms in the rainy season."""
    rng = stream(seed, cal.month.year, cal.month.number, 0, WEATHER)
    m = cal.month.number - 1
    kind = season(cal.month.number)
    anomaly = np.zeros(cal.days)
    for d in range(cal.days):
        anomaly[d] = (0.6 * anomaly[d - 1] if d else 0.0) + rng.normal(0.0, 0.8)
    half_range = _HALF_RANGE_T[m] + rng.normal(0.0, 0.5, cal.days)
    storm_p = {"hot": 0.15, "rainy": 0.45, "cool": 0.05}[kind]
    storm = rng.random(cal.days) < storm_p
    storm_start = rng.uniform(14.0, 18.5, cal.days)
    storm_drop = rng.uniform(2.5, 5.0, cal.days)
    cloud_mean = {"hot": 0.3, "rainy": 0.55, "cool": 0.2}[kind]
    cloud = np.clip(rng.beta(4 * cloud_mean, 4 * (1 - cloud_mean), cal.days) + 0.3 * storm, 0, 1)
    rh_anomaly = rng.normal(0.0, 4.0, cal.days)

    centre = np.arange(cal.days) + 0.5
    daily_mean = np.interp(np.arange(cal.minutes) / MINUTES_PER_DAY, centre, _MEAN_T[m] + anomaly)
    diurnal = half_range[cal.day] * np.cos(2 * np.pi * (cal.hour - 14.5) / 24)
    since_storm = cal.hour - storm_start[cal.day]
    cooling = np.where(storm[cal.day] & (since_storm >= 0), np.exp(-since_storm / 2.0), 0.0)
    temperature = daily_mean + diurnal - storm_drop[cal.day] * cooling
    humidity = _MEAN_RH[m] + rh_anomaly[cal.day] - 2.8 * diurnal + 15.0 * cooling
    building = _smooth(temperature, 120.0)
    return Weather(temperature, building, np.clip(humidity, 35.0, 98.0), cloud)


@dataclass
class _Zone:
    """When a zone is occupied in a month: people drive lights, plugs and the AC schedule."""

    active: np.ndarray  # per day
    arrive: np.ndarray  # hour, per day
    leave: np.ndarray  # hour, per day
    occupancy: np.ndarray  # 0..1 per minute
    ac_on: list[np.ndarray] = field(default_factory=list)  # per AC unit, per minute
    ac_load: list[np.ndarray] = field(default_factory=list)
    light_on: np.ndarray | None = None


# Channel tags inside a zone's streams; AC units use their own number.
_LIGHT, _PLUG, _CO2 = 100, 101, 102
_SENSOR_TAGS = {"degC": 200, "RH%": 201, "lux": 202}


class FloorModel:
    """Simulates the channels of one floor for one month; zones are built lazily and cached."""

    def __init__(self, seed: int, floor: int, cal: Calendar, wx: Weather) -> None:
        self.seed = seed
        self.floor = floor
        self.cal = cal
        self.wx = wx
        self._zones: dict[int, _Zone] = {}

    def _monthly(self, *keys: int) -> np.random.Generator:
        month = self.cal.month
        return stream(self.seed, month.year, month.number, self.floor, SIGNALS, *keys)

    def _static(self, *keys: int) -> np.random.Generator:
        """Parameters of the installed equipment: the same every month."""
        return stream(self.seed, PARAMS, self.floor, *keys)

    def zone(self, zone: int) -> _Zone:
        if zone not in self._zones:
            self._zones[zone] = self._schedule(zone)
        return self._zones[zone]

    def _schedule(self, zone: int) -> _Zone:
        cal = self.cal
        rng = self._monthly(zone)
        n = cal.days
        workday, saturday = cal.day_type == WORKDAY, cal.day_type == SATURDAY
        u = rng.random(n)
        active = np.where(workday, u < 0.97, np.where(saturday, u < 0.35, u < 0.04))
        arrive = np.where(
            workday,
            rng.normal(7.9, 0.3, n),
            np.where(saturday, rng.normal(8.8, 0.4, n), rng.normal(10.0, 1.0, n)),
        )
        overtime = np.where(rng.random(n) < 0.1, rng.uniform(1.0, 3.0, n), 0.0)
        leave = np.where(
            workday,
            rng.normal(18.0, 0.5, n) + overtime,
            np.where(saturday, rng.normal(12.5, 0.6, n), arrive + rng.uniform(2.0, 5.0, n)),
        )
        intensity = np.where(
            workday,
            rng.uniform(0.75, 1.0, n),
            np.where(saturday, rng.uniform(0.3, 0.6, n), rng.uniform(0.15, 0.35, n)),
        )
        h, d = cal.hour, cal.day
        lunch = 1.0 - 0.35 * np.exp(-(((h - 12.5) / 0.4) ** 2))
        occupancy = (
            active[d]
            * intensity[d]
            * _sigmoid((h - arrive[d]) / 0.2)
            * _sigmoid((leave[d] - h) / 0.3)
            * lunch
        )
        return _Zone(active, arrive, leave, occupancy)

    def _window(self, zone: _Zone, rng: np.random.Generator, lead: float, lag: float) -> np.ndarray:
        """Per-minute on/off for equipment switched on around the zone's occupied hours."""
        n = self.cal.days
        start = zone.arrive - rng.uniform(0.0, lead, n)
        end = zone.leave + rng.uniform(-0.2, lag, n)
        h, d = self.cal.hour, self.cal.day
        return zone.active[d] & (h >= start[d]) & (h < end[d])

    def ac(self, zone_no: int, unit: int, coupled: bool = True) -> np.ndarray:
        """AC unit kW: 0 or a controller's trickle when off; when on, a cycling compressor.

        The running load follows outdoor temperature, the afternoon peak and occupancy.
        """
        zone = self.zone(zone_no)
        params = self._static(zone_no, unit)
        capacity = params.uniform(2.5, 12.0)
        period = params.uniform(10.0, 20.0)
        phase = params.uniform(0.0, period)
        standby = params.uniform(0.01, 0.03) if params.random() < 0.3 else 0.0
        bias = params.uniform(0.85, 1.1)
        rng = self._monthly(zone_no, unit)
        used = rng.random(self.cal.days) < 0.92
        on = self._window(zone, rng, 0.5, 0.4) & used[self.cal.day]
        left_on = rng.random(self.cal.days) < 0.005
        on |= left_on[self.cal.day] & (self.cal.hour >= 17.0)
        h = self.cal.hour
        load = np.clip(
            (
                0.35
                + 0.06 * (self.wx.temperature - 28.0)
                + 0.2 * np.exp(-(((h - 15.0) / 3.0) ** 2))
                + 0.25 * zone.occupancy
            )
            * bias,
            0.15,
            1.0,
        )
        t = np.arange(self.cal.minutes)
        compressor = ((t + phase) / period) % 1.0 < load
        running = capacity * (0.25 + 0.75 * compressor) * (1.0 + rng.normal(0.0, 0.04, t.size))
        idle = standby + np.where(rng.random(t.size) < 0.02, rng.uniform(0.0, 0.05, t.size), 0.0)
        if coupled:
            zone.ac_on.append(on)
            zone.ac_load.append(load)
        return np.clip(np.where(on, running, idle), 0.0, _MAX_AC_KW)

    def light(self, zone_no: int) -> np.ndarray:
        """Lighting kW: a small always-on load, the zone's lights while people are in."""
        zone = self.zone(zone_no)
        params = self._static(zone_no, _LIGHT)
        capacity = params.uniform(1.0, 3.0)
        night = params.uniform(0.03, 0.08)
        rng = self._monthly(zone_no, _LIGHT)
        on = self._window(zone, rng, 0.2, 0.7)
        level = np.where(
            self.cal.day_type == WORKDAY,
            rng.uniform(0.85, 1.0, self.cal.days),
            rng.uniform(0.3, 0.6, self.cal.days),
        )[self.cal.day]
        size = self.cal.minutes
        value = np.where(
            on,
            capacity * level * (1.0 + rng.normal(0.0, 0.01, size)),
            night * (1.0 + rng.normal(0.0, 0.05, size)),
        )
        zone.light_on = on
        return np.clip(value, 0.0, None)

    def plug(self, zone_no: int) -> np.ndarray:
        """Plug kW: base load (servers, fridges) plus desks in use, with the odd kettle spike."""
        zone = self.zone(zone_no)
        params = self._static(zone_no, _PLUG)
        base = params.uniform(0.2, 1.0)
        work = params.uniform(0.8, 2.5)
        rng = self._monthly(zone_no, _PLUG)
        size = self.cal.minutes
        value = base * (1.0 + rng.normal(0.0, 0.03, size))
        value += work * zone.occupancy * (1.0 + rng.normal(0.0, 0.08, size))
        value += np.where(rng.random(size) < 0.002, rng.uniform(0.5, 1.5, size), 0.0)
        return np.clip(value, 0.0, None)

    def _cooling(self, zone_no: int) -> tuple[np.ndarray, np.ndarray]:
        """Cooling at work in the zone (0..1) and its load; zones without AC borrow the floor's."""
        zone = self.zone(zone_no)
        if zone.ac_on:  # two of three units running hold the set point
            share = np.clip(1.5 * np.mean(zone.ac_on, axis=0), 0.0, 1.0)
            return share, np.mean(zone.ac_load, axis=0)
        others = [z for z in self._zones.values() if z.ac_on]
        if not others:
            return np.zeros(self.cal.minutes), np.zeros(self.cal.minutes)
        on = np.mean([np.mean(z.ac_on, axis=0) for z in others], axis=0)
        load = np.mean([np.mean(z.ac_load, axis=0) for z in others], axis=0)
        return 0.5 * on, load

    def temperature(self, zone_no: int) -> np.ndarray:
        """S1 degC: near the set point while the zone's AC runs, drifting to 28-33 when it stops."""
        zone = self.zone(zone_no)
        params = self._static(zone_no, _SENSOR_TAGS["degC"])
        setpoint = params.uniform(23.6, 24.8)
        tau = params.uniform(15.0, 30.0)
        rng = self._monthly(zone_no, _SENSOR_TAGS["degC"])
        cooling, load = self._cooling(zone_no)
        drive = 29.0 + 0.5 * (self.wx.building - 28.5) + 1.5 * _sun(self.cal.hour)
        free = np.clip(drive + 1.0 * zone.occupancy, 28.0, 33.0)
        cooled = setpoint + 0.9 * (load - 0.5) + 0.4 * zone.occupancy
        value = _smooth(free - cooling * (free - cooled), tau)
        value += rng.normal(0.0, 0.04, self.cal.minutes)
        return np.clip(value, *_TEMPERATURE)

    def humidity(self, zone_no: int) -> np.ndarray:
        """S1 RH%: follows outdoor humidity (rainy season high), pulled down while the AC runs."""
        params = self._static(zone_no, _SENSOR_TAGS["RH%"])
        dry = params.uniform(48.0, 56.0)
        rng = self._monthly(zone_no, _SENSOR_TAGS["RH%"])
        cooling, _ = self._cooling(zone_no)
        free = np.clip(0.85 * self.wx.humidity + 6.0, 55.0, 79.0)
        conditioned = dry + 0.1 * (self.wx.humidity - 70.0)
        value = _smooth(free - cooling * (free - conditioned), 30.0)
        value += rng.normal(0.0, 0.3, self.cal.minutes)
        return np.clip(value, *_HUMIDITY)

    def illuminance(self, zone_no: int) -> np.ndarray:
        """S1 lux: daylight through the windows (less on cloudy days) plus the zone's lights."""
        zone = self.zone(zone_no)
        params = self._static(zone_no, _SENSOR_TAGS["lux"])
        window = params.uniform(150.0, 700.0)
        lamps = params.uniform(250.0, 450.0)
        rng = self._monthly(zone_no, _SENSOR_TAGS["lux"])
        cal = self.cal
        sun = _sun(cal.hour) ** 1.3
        passing = _smooth(rng.normal(0.0, 1.0, cal.minutes), 8.0)
        daylight = window * sun * (1.0 - 0.65 * self.wx.cloud[cal.day]) * (1.0 + 0.15 * passing)
        lights = lamps * (zone.light_on if zone.light_on is not None else 0.0)
        value = (daylight + lights) * (1.0 + rng.normal(0.0, 0.01, cal.minutes))
        return np.clip(value, 0.0, _MAX_LUX)

    def co2(self, zone_no: int) -> np.ndarray:
        """CO2 ppm of a zone: not a CU-BEMS channel, only written under an unknown column name."""
        zone = self.zone(zone_no)
        rng = self._monthly(zone_no, _CO2)
        value = 420.0 + 650.0 * _smooth(zone.occupancy, 20.0)
        return value + rng.normal(0.0, 8.0, self.cal.minutes)

    def channels(self, columns: list[str]) -> np.ndarray:
        """Values of the floor's layout columns, (minutes x columns), unrounded and gap-free.

        Power channels are simulated first so every S1 sensor sees its zone's AC and lights.
        """
        channels = [parse_column(self.floor, column) for column in columns]
        out = np.empty((self.cal.minutes, len(columns)))
        power = [i for i, c in enumerate(channels) if c is not None and c.unit == "kW"]
        sensors = [i for i, c in enumerate(channels) if c is not None and c.unit != "kW"]
        for i in power + sensors:
            channel = channels[i]
            assert channel is not None
            out[:, i] = self._channel(channel.zone, channel.channel, channel.unit)
        unknown = [columns[i] for i, c in enumerate(channels) if c is None]
        if unknown:
            raise ValueError(f"not channel columns: {', '.join(unknown)}")
        return out

    def _channel(self, zone: int, name: str, unit: str) -> np.ndarray:
        if name.startswith("AC"):
            return self.ac(zone, int(name[2:]))
        if name == "Light":
            return self.light(zone)
        if name == "Plug":
            return self.plug(zone)
        return {"degC": self.temperature, "RH%": self.humidity, "lux": self.illuminance}[unit](zone)
