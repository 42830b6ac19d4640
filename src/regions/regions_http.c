/* regions_http: /api/v1/regions and /api/v1/rivers, limited to the regency this deployment
 * serves. */
#include "regions/regions_http.h"

#include "regions/regions.h"
#include "core/banned.h"

static enum err_code served(struct http_req *r, const char *code, struct err *err)
{
    const char *regency = http_app(r)->cfg->regency;
    if (!regions_within(code, regency))
        return err_set(err, ERR_NOT_FOUND,
                       "region '%s' is not part of regency %s served here", code, regency);
    return ERR_OK;
}

enum err_code regions_http_list(struct http_req *r, struct err *err)
{
    const char *parent = http_query(r, "parent");
    bool geometry = http_query_flag(r, "geometry");
    json_t *out;
    if (!parent) { /* the top of the tree: the regency itself */
        json_t *one;
        if (regions_get(http_db(r), http_app(r)->cfg->regency, geometry, &one, err))
            return err->code;
        out = geometry ? json_pack("{s:s,s:[o]}", "type", "FeatureCollection", "features", one)
                       : json_pack("[o]", one);
    } else if (served(r, parent, err) ||
               regions_children(http_db(r), parent, geometry, &out, err)) {
        return err->code;
    }
    http_reply_json(r, 200, out);
    return ERR_OK;
}

enum err_code regions_http_get(struct http_req *r, struct err *err)
{
    json_t *out;
    const char *code = http_param(r, 0);
    if (served(r, code, err) ||
        regions_get(http_db(r), code, http_query_flag(r, "geometry"), &out, err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}

enum err_code regions_http_rivers(struct http_req *r, struct err *err)
{
    json_t *out;
    if (regions_rivers(http_db(r), http_app(r)->cfg->regency, http_query_flag(r, "geometry"),
                       &out, err))
        return err->code;
    http_reply_json(r, 200, out);
    return ERR_OK;
}
