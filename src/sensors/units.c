/* units: SenML units (RFC 8428 §12.1) and the secondary units of RFC 8798 that loggers send,
 * each as a scale of its base unit, so a level sent in cm is stored in m. */
#include <string.h>

#include "sensors/sensors_int.h"
#include "core/banned.h"

static const struct {
    const char *unit, *base;
    double scale;
} units[] = {
    {"m", "m", 1},           {"cm", "m", 0.01},       {"mm", "m", 0.001},
    {"km", "m", 1000},       {"m/s", "m/s", 1},       {"km/h", "m/s", 1 / 3.6},
    {"mm/h", "m/s", 1 / 3.6e6}, {"mm/s", "m/s", 0.001}, {"Cel", "Cel", 1},
    {"%RH", "%RH", 1},       {"%", "%", 1},           {"/", "/", 1},
    {"%EL", "%EL", 1},       {"V", "V", 1},           {"mV", "V", 0.001},
    {"A", "A", 1},           {"mA", "A", 0.001},      {"Pa", "Pa", 1},
    {"hPa", "Pa", 100},      {"kPa", "Pa", 1000},     {"m3/s", "m3/s", 1},
    {"l/s", "m3/s", 0.001},  {"W/m2", "W/m2", 1},     {"lx", "lx", 1},
    {"kg", "kg", 1},         {"g", "kg", 0.001},      {"s", "s", 1},
    {"min", "s", 60},        {"h", "s", 3600},        {"rad", "rad", 1},
    {"deg", "rad", 0.017453292519943295},
};

static int find(const char *u)
{
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(units[i].unit, u) == 0)
            return (int)i;
    return -1;
}

bool sensors__unit_known(const char *unit)
{
    return find(unit) >= 0;
}

bool sensors__unit_factor(const char *from, const char *to, double *factor)
{
    int a = find(from), b = find(to);
    if (a < 0 || b < 0 || strcmp(units[a].base, units[b].base) != 0)
        return false;
    *factor = a == b ? 1.0 : units[a].scale / units[b].scale;
    return true;
}
