/* app: what every handler may reach: the settings and the database. Built once by main. */
#ifndef SINERGI_APP_H
#define SINERGI_APP_H

#include <stdint.h>

#include "core/config.h"
#include "db/db.h"

struct app {
    const struct config *cfg;
    struct db *db;
    int64_t started_at; /* unix seconds */
};

#endif
