/* generate.c: `callstream generate`, a deterministic generator of realistic
 * synthetic police calls for service as NDJSON, with optional duplicates,
 * late calls and malformed messages, for tests, demos and benchmarks. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_avro.h"
#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_common.h"
#include "cs_parse.h"
#include "cs_time.h"

#define CMD "generate"

/* Lines are formatted straight into one big buffer that is written with a
 * single fwrite when nearly full: no per-line allocation or stdio call. */
#define OUT_BUFSZ (1 << 20)
/* Upper bound on one line; the longest the tables allow is under 1000 bytes
 * (a record twice on one line), so this leaves ample margin. */
#define MAX_LINE 4096
/* Duplicates are drawn from this many most recent new calls. */
#define RING_SIZE 1024
/* The event times the parser accepts: 0001-01-01 to 9999-12-31. */
#define MIN_TS (-62135596800LL)
#define MAX_TS (253402300799LL)

/* A table string, already written as the inside of a JSON string literal
 * (escapes included), with its length. */
struct text {
        const char *s;
        size_t len;
};
#define T(lit)                                                                 \
        {                                                                      \
                lit, sizeof(lit) - 1                                           \
        }

/*
 * Tables. The weights follow the 700-record sample of the real data set
 * (counts per value), so a generated stream has the same shape: Passing
 * Call a quarter of all calls, "Not recorded" about a fifth of the
 * dispositions, and so on.
 */

/* Disposition profiles: the disposition depends on the kind of call (a
 * Passing Call is handled or not recorded, a Traffic Stop mostly cited). */
enum profile { P_GENERAL, P_PASSING, P_MUNI, P_TRAFFIC, P_CITE, P_ALARM, P_N };

static const struct text dispositions[] = {
        T("HAN"), T("Not recorded"), T("CIT"), T("ADV"), T("REP"), T("GOA"),
        T("UTL"), T("ND"),           T("NOM"), T("PAS"), T("CAN"), T("ADM"),
        T("ABA"), T("22"),           T("NCR"), T("ARR"), T("SFD"),
};
#define N_DISP CS_ARRAY_SIZE(dispositions)

/* Weights per profile, in the order of dispositions[]. */
static const unsigned disp_weights[P_N][N_DISP] = {
        /* HAN  NR CIT ADV REP GOA UTL  ND NOM PAS CAN ADM ABA 22 NCR ARR SFD */
        [P_GENERAL] = {79, 9, 8, 49, 57, 31, 30, 22, 15, 0, 9, 1, 3, 3, 1, 2,
                       1},
        [P_PASSING] = {83, 83, 0, 0, 0, 0, 0, 4},
        [P_MUNI] = {7, 53},
        [P_TRAFFIC] = {7, 0, 34, 17, 0, 0, 0, 1, 0, 0, 0, 4},
        [P_CITE] = {7, 3, 26, 1, 0, 10, 0, 0, 6, 0, 3},
        [P_ALARM] = {3, 0, 0, 0, 0, 0, 0, 0, 2, 20, 4, 0, 0, 0, 3},
};

struct crime_type {
        struct text name;
        unsigned weight; /* 0: an escape variant, only drawn as such */
        unsigned char profile;
        /* For a variant: the plain entry it decodes to, or -1 when its
         * decoded text is new. */
        short same_as;
};

static const struct crime_type crime_types[] = {
        {T("Passing Call"), 170, P_PASSING, -1},
        {T("Traffic Stop"), 63, P_TRAFFIC, -1},
        {T("Muni Inspection"), 60, P_MUNI, -1},
        {T("Suspicious Vehicle"), 34, P_GENERAL, -1},
        {T("Traf Violation Cite"), 28, P_CITE, -1},
        {T("Audible Alarm"), 27, P_ALARM, -1},
        {T("Suspicious Person"), 20, P_GENERAL, -1},
        {T("Fight No Weapon"), 19, P_GENERAL, -1},
        {T("22500e"), 16, P_CITE, -1},
        {T("Noise Nuisance"), 15, P_GENERAL, -1},
        {T("Well Being Check"), 14, P_GENERAL, -1},
        {T("Trespasser"), 14, P_GENERAL, -1},
        {T("Auto Boost / Strip"), 13, P_GENERAL, -1},
        {T("Poss"), 8, P_GENERAL, -1},
        {T("601"), 8, P_GENERAL, -1},
        {T("Assault / Battery"), 7, P_GENERAL, -1},
        {T("Traf Violation Tow"), 7, P_CITE, -1},
        {T("Meet W/citizen"), 6, P_GENERAL, -1},
        {T("Jo"), 5, P_GENERAL, -1},
        {T("22500f"), 5, P_CITE, -1},
        {T("Petty Theft"), 5, P_GENERAL, -1},
        {T("Homeless Complaint"), 5, P_GENERAL, -1},
        {T("Burglary"), 5, P_GENERAL, -1},
        {T("Meet W/officer"), 4, P_GENERAL, -1},
        {T("Caser"), 4, P_GENERAL, -1},
        {T("H&r Veh Accident"), 4, P_GENERAL, -1},
        {T("Fraud"), 4, P_GENERAL, -1},
        {T("Prowler"), 3, P_GENERAL, -1},
        {T("J/o"), 3, P_GENERAL, -1},
        {T("Vandalism"), 3, P_GENERAL, -1},
        {T("7.2.27"), 3, P_GENERAL, -1},
        {T("Complaint Unkn"), 3, P_GENERAL, -1},
        {T("Rep"), 3, P_GENERAL, -1},
        {T("Vehicle Alarm"), 3, P_ALARM, -1},
        {T("Aided Case"), 3, P_GENERAL, -1},
        {T("909"), 3, P_GENERAL, -1},
        {T("Drunk Driver"), 2, P_GENERAL, -1},
        {T("Strongarm Robbery"), 2, P_GENERAL, -1},
        {T("H&r Injury Accident"), 2, P_GENERAL, -1},
        {T("Party"), 2, P_GENERAL, -1},
        {T("518"), 2, P_GENERAL, -1},
        {T("Veh Accident"), 2, P_GENERAL, -1},
        {T("Injury Veh Accident"), 2, P_GENERAL, -1},
        {T("Return"), 2, P_GENERAL, -1},
        {T("Shots Fired"), 2, P_GENERAL, -1},
        {T("Suicide Attempt"), 2, P_GENERAL, -1},
        {T("Person Screaming"), 2, P_GENERAL, -1},
        {T("Arrest Made"), 2, P_GENERAL, -1},
        {T("917"), 2, P_GENERAL, -1},
        {T("At Risk"), 2, P_GENERAL, -1},
        {T("Fight No Weapon Dv"), 2, P_GENERAL, -1},
        {T("594"), 2, P_GENERAL, -1},
        {T("Agg Assault / Adw"), 2, P_GENERAL, -1},
        {T("Indecent Exposure"), 2, P_GENERAL, -1},
        {T("910"), 2, P_GENERAL, -1},
        {T("Report"), 2, P_GENERAL, -1},
        {T("7.2.25"), 2, P_GENERAL, -1},
        {T("Missing Juvenile"), 2, P_GENERAL, -1},
        {T("Casers"), 2, P_GENERAL, -1},
        {T("Family"), 2, P_GENERAL, -1},
        {T("Silent Alarm"), 1, P_ALARM, -1},
        {T("Panic Alarm"), 1, P_ALARM, -1},
        {T("Robbery"), 1, P_GENERAL, -1},
        {T("Person W/knife"), 1, P_GENERAL, -1},
        {T("Person W/gun"), 1, P_GENERAL, -1},
        {T("Fire"), 1, P_GENERAL, -1},
        {T("Fireworks"), 1, P_GENERAL, -1},
        {T("Missing Adult"), 1, P_GENERAL, -1},
        {T("5150 Eval"), 1, P_GENERAL, -1},
        {T("Loud Music"), 1, P_GENERAL, -1},
        {T("Graffiti Vandalism"), 1, P_GENERAL, -1},
        {T("Intoxicated Person"), 1, P_GENERAL, -1},
        {T("Drugs"), 1, P_GENERAL, -1},
        {T("Veh Vs. Ped"), 1, P_GENERAL, -1},
        {T("Loitering"), 1, P_GENERAL, -1},
        /* Rare spellings that exercise a parser's escape handling. Most
         * decode to a plain entry above, so counts per crime type must not
         * depend on how the producer escaped the text. */
        {T("H\\u0026r Veh Accident"), 0, P_GENERAL, 25},
        {T("Meet W\\/citizen"), 0, P_GENERAL, 17},
        {T("Passing\\u0020Call"), 0, P_PASSING, 0},
        {T("\\u0054raffic Stop"), 0, P_TRAFFIC, 1},
        {T("Fight No Weapon \\u2013 Dv"), 0, P_GENERAL, -1},
        {T("Fight No Weapon \xe2\x80\x93 Dv"), 0, P_GENERAL, -1},
        {T("Well Being Check \\\"wbc\\\""), 0, P_GENERAL, -1},
};
#define N_TYPES CS_ARRAY_SIZE(crime_types)

struct street {
        struct text name;
        unsigned weight;
};

static const struct street streets[] = {
        {T("Mission St"), 69},
        {T("Market St"), 59},
        {T("Geary Bl"), 33},
        {T("3rd St"), 17},
        {T("Eddy St"), 15},
        {T("Haight St"), 13},
        {T("The Embarcadero Sou"), 13},
        {T("16th St"), 13},
        {T("Van Ness Av"), 12},
        {T("Folsom St"), 11},
        {T("Chestnut St"), 10},
        {T("Funston Av"), 10},
        {T("Cabrillo St"), 10},
        {T("Taylor St"), 10},
        {T("5th St"), 9},
        {T("Broadway"), 9},
        {T("Fillmore St"), 8},
        {T("The Embarcadero Nor"), 8},
        {T("17th St"), 8},
        {T("Clement St"), 8},
        {T("Geneva Av"), 8},
        {T("7th St"), 8},
        {T("18th St"), 7},
        {T("Turk St"), 7},
        {T("Post St"), 7},
        {T("Leavenworth St"), 7},
        {T("Hyde St"), 7},
        {T("Divisadero St"), 6},
        {T("Geary St"), 6},
        {T("4th St"), 6},
        {T("Howard St"), 6},
        {T("Harrison St"), 6},
        {T("California St"), 6},
        {T("Powell St"), 6},
        {T("Mason St"), 6},
        {T("Valencia St"), 6},
        {T("Silver Av"), 6},
        {T("Grant Av"), 5},
        {T("Golden Gate Av"), 5},
        {T("27th Av"), 5},
        {T("Columbus Av"), 5},
        {T("11th St"), 5},
        {T("Castro St"), 5},
        {T("Newcomb Av"), 5},
        {T("Cesar Chavez St"), 5},
        {T("Polk St"), 5},
        {T("Church St"), 5},
        {T("8th St"), 5},
        {T("Battery St"), 4},
        {T("Jones St"), 4},
        {T("Dolores St"), 4},
        {T("41st Av"), 4},
        {T("Ocean Av"), 4},
        {T("6th Av"), 4},
        {T("Vallejo St"), 4},
        {T("Irving St"), 4},
        {T("9th Av"), 4},
        {T("Sutter St"), 4},
        {T("Steiner St"), 4},
        {T("Pine St"), 4},
        {T("Ofarrell St"), 4},
        {T("Laguna St"), 4},
        {T("30th St"), 4},
        {T("Parker Av"), 3},
        {T("Bryant St"), 3},
        {T("Jackson St"), 3},
        {T("Fell St"), 3},
        {T("Greenwich St"), 3},
        {T("Buena Vista Av W"), 3},
        {T("South Van Ness Av"), 3},
        {T("Pacific Av"), 3},
        {T("Lombard St"), 3},
        {T("Ellis St"), 3},
        {T("21st St"), 3},
        {T("Bay St"), 3},
        {T("Main St"), 3},
        {T("Naples St"), 3},
        {T("Oak St"), 3},
        {T("Sacramento St"), 3},
        {T("Hayes St"), 3},
        {T("26th Av"), 3},
        {T("13th St"), 3},
        {T("8th Av"), 3},
        {T("Ellsworth St"), 3},
        {T("15th Av"), 3},
        {T("Pond St"), 3},
        {T("24th St"), 3},
        {T("Oakdale Av"), 3},
        {T("19th Av"), 3},
        {T("Collingwood St"), 3},
        {T("Mcallister St"), 3},
        {T("Madrid St"), 3},
        {T("Richland Av"), 3},
        {T("18th Av"), 2},
        {T("Sansome St"), 2},
        {T("Union St"), 2},
        {T("Front St"), 2},
        {T("Green St"), 2},
        {T("Jessie St"), 2},
        {T("Belvedere St"), 2},
        {T("Waller St"), 2},
        {T("3rd Av"), 2},
        {T("Plymouth Av"), 2},
        {T("Spear St"), 2},
        {T("Stockton St"), 2},
        {T("Great Hy"), 2},
        {T("Sunnydale Av"), 2},
        {T("34th Av"), 2},
        {T("Webster St"), 2},
        {T("San Carlos St"), 2},
        {T("Sickles Av"), 2},
        {T("Townsend St"), 2},
        {T("Williams Av"), 2},
        {T("Essex St"), 2},
        {T("Anza St"), 2},
        {T("Excelsior Av"), 2},
        {T("Duboce Av"), 2},
        {T("Minna St"), 2},
        {T("Larch St"), 2},
        {T("Masonic Av"), 2},
        {T("Wisconsin St"), 1},
        {T("Miramar Av"), 1},
};
#define N_STREETS CS_ARRAY_SIZE(streets)

/* address_type values, spelled as in the real data. */
enum addr_type { AT_PREMISE, AT_INTERSECTION, AT_COMMON, AT_GEO };

static const struct text addr_types[] = {
        [AT_PREMISE] = T("Premise address"),
        [AT_INTERSECTION] = T("Intersection"),
        [AT_COMMON] = T("common_location"),
        [AT_GEO] = T("Geo-Override"),
};

static const struct text city_sf = T("San Francisco");

/* A complete location: address, city, address_type and common_location. */
struct place {
        struct text address;
        struct text city;
        struct text common;
        unsigned char type;
        unsigned weight;
};

/* Named places (address_type "common_location"), all in San Francisco. */
static const struct place common_places[] = {
        {T("1100 Block Of Market St"), T("San Francisco"),
         T("Civic Center Muni, Sf"), AT_COMMON, 8},
        {T("300 Block Of Market St"), T("San Francisco"),
         T("Embarcadero Muni Station, Sf"), AT_COMMON, 7},
        {T("1500 Block Of Market St"), T("San Francisco"),
         T("Van Ness Av Muni, Sf"), AT_COMMON, 7},
        {T("3100 Block Of Mission St"), T("San Francisco"), T("Roccapulco"),
         AT_COMMON, 6},
        {T("600 Block Of Market St"), T("San Francisco"),
         T("Montgomery Muni, Sf"), AT_COMMON, 5},
        {T("0 Block Of The Embarcadero Sou"), T("San Francisco"),
         T("Ferry Bldg, Sf"), AT_COMMON, 4},
        {T("1500 Block Of Haight St"), T("San Francisco"),
         T("Haight St Corridor, Sf"), AT_COMMON, 3},
        {T("100 Block Of Christmas Tree Point Rd"), T("San Francisco"),
         T("Twin Peaks Viewpoint"), AT_COMMON, 3},
        {T("1500 Block Of Haight St"), T("San Francisco"),
         T("Haight St Corridor"), AT_COMMON, 3},
        {T("300 Block Of Geary St"), T("San Francisco"), T("Union Square, Sf"),
         AT_COMMON, 3},
        {T("600 Block Of Buena Vista Av W"), T("San Francisco"),
         T("Buena Vista Park, Sf"), AT_COMMON, 2},
        {T("100 Block Of 34th Av"), T("San Francisco"), T("Legion Of Honor"),
         AT_COMMON, 2},
        {T("500 Block Of Clement St"), T("San Francisco"),
         T("Clement St Corridor, Sf"), AT_COMMON, 2},
        {T("2900 Block Of Taylor St"), T("San Francisco"),
         T("Fishermans Wharf, Sf"), AT_COMMON, 2},
        {T("800 Block Of Mission St"), T("San Francisco"),
         T("5th & Mission Garage, Sf"), AT_COMMON, 2},
        {T("100 Block Of Collingwood St"), T("San Francisco"),
         T("Collingwood Park, Sf"), AT_COMMON, 2},
        {T("800 Block Of Vallejo St"), T("San Francisco"),
         T("Central Station, Sf"), AT_COMMON, 2},
        {T("2400 Block Of Market St"), T("San Francisco"),
         T("Castro St Muni, Sf"), AT_COMMON, 2},
        {T("900 Block Of Market St"), T("San Francisco"),
         T("Powell St Muni, Sf"), AT_COMMON, 2},
        {T("3300 Block Of 20th Av"), T("San Francisco"),
         T("Stonestown Galleria, Sf"), AT_COMMON, 1},
        {T("600 Block Of Dolores St"), T("San Francisco"),
         T("Mission Dolores Park"), AT_COMMON, 1},
        {T("0 Block Of Telegraph Hill Bl"), T("San Francisco"), T("Coit Tower"),
         AT_COMMON, 1},
        {T("1500 Block Of Sloat Bl"), T("San Francisco"), T("Lakeshore Pz, Sf"),
         AT_COMMON, 1},
        {T("700 Block Of Great Hy"), T("San Francisco"),
         T("Ocean Beach Parking Lot - Balboa, Sf"), AT_COMMON, 1},
        {T("1200 Block Of Market St #662"), T("San Francisco"),
         T("Hotel Whitcombe #662, Sf"), AT_COMMON, 1},
        {T("400 Block Of 11th St"), T("San Francisco"), T("Dna Lounge, Sf"),
         AT_COMMON, 1},
        {T("1300 Block Of 3rd St"), T("San Francisco"),
         T("Southern Station, Sf"), AT_COMMON, 1},
        {T("400 Block Of Castro St"), T("San Francisco"),
         T("Castro Theatre, Sf"), AT_COMMON, 1},
        {T("400 Block Of Eddy St"), T("San Francisco"),
         T("Jefferson Hotel Sro, Sf"), AT_COMMON, 1},
        {T("600 Block Of Market St"), T("San Francisco"),
         T("Montgomery Bart, Sf"), AT_COMMON, 1},
        {T("600 Block Of Broadway"), T("San Francisco"),
         T("Broadway Corridor, Sf"), AT_COMMON, 1},
        {T("1800 Block Of Oak St"), T("San Francisco"),
         T("Panhandle Park Plgd"), AT_COMMON, 1},
        {T("1000 Block Of Great Hy"), T("San Francisco"), T("Beach Chalet, Sf"),
         AT_COMMON, 1},
        {T("600 Block Of Valencia St"), T("San Francisco"),
         T("Mission Station, Sf"), AT_COMMON, 1},
        {T("1100 Block Of Point Lobos Av"), T("San Francisco"),
         T("Cliff House"), AT_COMMON, 1},
        {T("500 Block Of Stanyan St"), T("San Francisco"),
         T("St Marys Hospital (Stm), Sf"), AT_COMMON, 1},
        {T("3500 Block Of California St"), T("San Francisco"),
         T("Laurel Village"), AT_COMMON, 1},
        {T("1200 Block Of Ocean Av"), T("San Francisco"),
         T("Whole Foods Mkt Ocean, Sf"), AT_COMMON, 1},
        {T("100 Block Of Golden Gate Br Toll Pz"), T("San Francisco"),
         T("Golden Gate Bridge Toll Pz, Sf"), AT_COMMON, 1},
        {T("400 Block Of Cesar Chavez St"), T("San Francisco"),
         T("Pier 80, Sf"), AT_COMMON, 1},
        {T("100 Block Of Grove St"), T("San Francisco"),
         T("Civic Center Pz, Sf"), AT_COMMON, 1},
        {T("200 Block Of Ofarrell St"), T("San Francisco"),
         T("Macys Downtown, Sf"), AT_COMMON, 1},
        {T("3600 Block Of Lyon St"), T("San Francisco"),
         T("Palace Of Fine Arts, Sf"), AT_COMMON, 1},
        {T("1100 Block Of Mission St #516"), T("San Francisco"),
         T("Isabel Hotel Sro #516, Sf"), AT_COMMON, 1},
        {T("2300 Block Of 24th Av"), T("San Francisco"),
         T("Taraval Station, Sf"), AT_COMMON, 1},
        {T("1200 Block Of Polk St"), T("San Francisco"),
         T("Polk St Corridor, Sf"), AT_COMMON, 1},
};
#define N_COMMON CS_ARRAY_SIZE(common_places)

/* Free-text overrides and places outside the city proper, where the city is
 * empty or another name. */
static const struct place odd_places[] = {
        {T("Clement St Corridor"), T(""), T(""), AT_GEO, 2},
        {T("549 Flood Ave"), T(""), T(""), AT_GEO, 1},
        {T("Judah And La Playa"), T(""), T(""), AT_GEO, 1},
        {T("Duboce Park"), T(""), T(""), AT_GEO, 1},
        {T("2400-2000blk Polk Street"), T(""), T(""), AT_GEO, 1},
        {T("3rd St & Newcomb Ave"), T(""), T(""), AT_GEO, 1},
        {T("West Portal"), T(""), T(""), AT_GEO, 1},
        {T("Stow Lake"), T(""), T(""), AT_GEO, 1},
        {T("Marina Green"), T(""), T(""), AT_GEO, 1},
        {T("Palace Of Fine Arts"), T(""), T(""), AT_GEO, 1},
        {T("Clement St/3rd Ave"), T(""), T(""), AT_GEO, 1},
        {T("West Portal Avenue"), T(""), T(""), AT_GEO, 1},
        {T("West Side Housing"), T(""), T(""), AT_GEO, 1},
        {T("2 Lake St"), T(""), T(""), AT_GEO, 1},
        {T("Martin Luther King Dr/music Concourse Dr"), T(""), T(""),
         AT_INTERSECTION, 1},
        {T("700 Block Of Avenue Of The Palms"), T("Treasure Isla"), T(""),
         AT_PREMISE, 3},
        {T("400 Block Of 13th St"), T("Treasure Isla"), T(""), AT_PREMISE, 1},
        {T("Gateview Av/exposition Dr"), T("Treasure Isla"), T(""),
         AT_INTERSECTION, 1},
        {T("100 Block Of Jerrold Av"), T("Hunters Point"), T(""), AT_PREMISE,
         1},
        {T("2700 Block Of Bayshore Bl"), T("Daly city"),
         T("Auto Return Bayshore, Dc"), AT_COMMON, 1},
};
#define N_ODD CS_ARRAY_SIZE(odd_places)

/* Rare places whose text exercises escapes and non-ASCII UTF-8: \u escapes
 * (also surrogate pairs), the same text raw and escaped, escaped quotes,
 * backslashes, slashes and a tab. Drawn uniformly, about 2 calls in 1000. */
static const struct place fancy_places[] = {
        {T("2100 Block Of Market St"), T("San Francisco"),
         T("Caf\\u00e9 Du Nord, Sf"), AT_COMMON, 1},
        {T("2200 Block Of Market St"), T("San Francisco"),
         T("Caf\xc3\xa9 Flore, Sf"), AT_COMMON, 1},
        {T("2200 Block Of Market St"), T("San Francisco"),
         T("Caf\\u00e9 Flore, Sf"), AT_COMMON, 1},
        {T("300 Block Of 9th St"), T("San Francisco"),
         T("\\\"the Stud\\\" Bar, Sf"), AT_COMMON, 1},
        {T("1600 Block Of Powell St"), T("San Francisco"),
         T("Pe\xc3\xb1"
           "a Pachamama, Sf"),
         AT_COMMON, 1},
        {T("Geary Bl\\/divisadero St"), T("San Francisco"), T(""),
         AT_INTERSECTION, 1},
        {T("24th St\\/mission St"), T("San Francisco"), T(""), AT_INTERSECTION,
         1},
        {T("0 Block Of The Embarcadero Nor"), T("San Francisco"),
         T("Pier 39 Sea Lions \\ud83e\\uddad, Sf"), AT_COMMON, 1},
        {T("0 Block Of The Embarcadero Nor"), T("San Francisco"),
         T("Pier 39 Sea Lions \xf0\x9f\xa6\xad, Sf"), AT_COMMON, 1},
        {T("3000 Block Of 24th St"), T("San Francisco"),
         T("Calle 24 \\u2013 Latino Cultural District, Sf"), AT_COMMON, 1},
        {T("100 Block Of 6th St"), T("San Francisco"),
         T("Hotel Mayfair Sro \\\\ Rm 12, Sf"), AT_COMMON, 1},
        {T("700 Block Of Larkin St"), T("San Francisco"),
         T("Tenderloin\\tSafe Passage, Sf"), AT_COMMON, 1},
        {T("Ca\xc3\xb1"
           "ada Del Rey \\u0026 Ocean Av"),
         T(""), T(""), AT_GEO, 1},
};
#define N_FANCY CS_ARRAY_SIZE(fancy_places)

/* How a call's location is stored: components, not text, so a call is a
 * few bytes and re-renders to the same line. */
enum loc_kind {
        L_PREMISE,      /* a = street, block: "N00 Block Of <a>" */
        L_INTERSECTION, /* a, b = streets: "<a>/<b, first letter lower>" */
        L_GEO_BLOCK,    /* a = street, block: "N00 Blk <a>", Geo-Override */
        L_COMMON,       /* a = index in common_places */
        L_ODD,          /* a = index in odd_places */
        L_FANCY,        /* a = index in fancy_places */
};

/* One generated call; exact duplicates re-render it byte for byte. */
struct call {
        uint64_t id;
        int64_t ts; /* event time, seconds since 1970-01-01 (minutes) */
        unsigned short type;
        unsigned char disp;
        unsigned char loc;
        unsigned short a, b;
        unsigned char block;  /* hundreds of the block number */
        unsigned char int_id; /* crime_id written as a JSON integer */
};

/* Where each field sits in a rendered line, so malformed variants can be
 * made by splicing: key[f] is the comma before the key (the '"' for the
 * first field), val[f] the first byte of the value, end[f] one past it. */
struct layout {
        unsigned short key[CS_F_COUNT];
        unsigned short val[CS_F_COUNT];
        unsigned short end[CS_F_COUNT];
};

/* Kinds of line, by the order the rates are cumulated in. */
enum line_kind { K_DUP, K_CHANGED, K_MALFORMED, K_LATE, K_NEW };

struct gen {
        uint64_t s[4]; /* xoshiro256** state */

        /* Cumulative 53-bit thresholds of the line kinds. */
        uint64_t kind_cut[K_NEW];
        double int_ids;
        int64_t max_delay; /* seconds */
        double gap_mean_us;

        int64_t clock_us; /* the stream's current event time, in us */
        uint64_t next_id;

        /* Cumulative weights for the weighted draws. */
        unsigned type_cum[N_TYPES];
        unsigned short type_variants[N_TYPES];
        unsigned n_type_variants;
        unsigned disp_cum[P_N][N_DISP];
        unsigned street_cum[N_STREETS];
        unsigned common_cum[N_COMMON];
        unsigned odd_cum[N_ODD];

        struct call ring[RING_SIZE];
        unsigned ring_n, ring_next;

        /* A call first sent malformed and then again, correctly, as the
         * next new call: only the valid copy may count. */
        struct call pending;
        int have_pending;

        /* Date text of the last rendered day, "YYYY-MM-DD". */
        int64_t cache_day;
        char cache_date[10];

        char tmp[MAX_LINE]; /* a valid line that a malformed one breaks */

        FILE *out;
        char *buf;
        size_t fill;
};

/*
 * Random numbers: xoshiro256** seeded through splitmix64, so the output
 * depends on nothing but the seed and the options.
 */

static uint64_t splitmix64(uint64_t *x)
{
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
        return (x << k) | (x >> (64 - k));
}

static inline uint64_t next_u64(struct gen *g)
{
        uint64_t *s = g->s;
        uint64_t result = rotl(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
}

/* A number in [0, n), n < 2^32 (multiply-shift; the bias is negligible). */
static inline unsigned below(struct gen *g, unsigned n)
{
        return (unsigned)(((next_u64(g) >> 32) * (uint64_t)n) >> 32);
}

/* A number in [0, 1). */
static inline double uniform(struct gen *g)
{
        return (double)(next_u64(g) >> 11) * 0x1.0p-53;
}

static inline int chance(struct gen *g, double p)
{
        return p > 0.0 && uniform(g) < p;
}

/* Running totals of the weights of a table: w is the weight member of its
 * first entry, entries are stride bytes apart. */
static void cumulate(const unsigned *w, size_t stride, size_t n, unsigned *cum)
{
        unsigned total = 0;
        size_t i;

        for (i = 0; i < n; i++) {
                total += *(const unsigned *)((const char *)w + i * stride);
                cum[i] = total;
        }
}

/* The index of a weighted draw: the first entry whose cumulative weight is
 * above a uniform number under the total. */
static unsigned pick(struct gen *g, const unsigned *cum, unsigned n)
{
        unsigned r = below(g, cum[n - 1]);
        unsigned lo = 0, hi = n - 1;

        while (lo < hi) {
                unsigned mid = (lo + hi) / 2;

                if (cum[mid] > r)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo;
}

/*
 * Formatting helpers: each writes at w and returns the new end.
 */

static inline char *put(char *w, const char *s, size_t n)
{
        memcpy(w, s, n);
        return w + n;
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static inline char *put_text(char *w, const struct text *t)
{
        return put(w, t->s, t->len);
}

static inline char *put2(char *w, int v)
{
        w[0] = (char)('0' + v / 10);
        w[1] = (char)('0' + v % 10);
        return w + 2;
}

static char *put_u64(char *w, uint64_t v)
{
        char tmp[20];
        int n = 0;

        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (n)
                *w++ = tmp[--n];
        return w;
}

/* "YYYY-MM-DD" of the day, cached because consecutive calls share it. */
static const char *date_text(struct gen *g, int64_t day)
{
        if (day != g->cache_day) {
                cs_time_format_date(day, g->cache_date);
                g->cache_day = day;
        }
        return g->cache_date;
}

static char *put_street_block(char *w, const struct call *c, int blk)
{
        if (c->block)
                w = put_u64(w, c->block);
        *w++ = '0';
        if (c->block)
                *w++ = '0';
        w = blk ? PUT_LIT(w, " Blk ") : PUT_LIT(w, " Block Of ");
        return put_text(w, &streets[c->a].name);
}

/* Writes the compact JSON object of c (no newline) at out, records where
 * each field is in *lay and returns the length. Fields are in the order of
 * the real data. */
static size_t render(struct gen *g, const struct call *c, char *out,
                     struct layout *lay)
{
        int64_t day = cs_time_floor_div(c->ts, 86400);
        int sod = (int)(c->ts - day * 86400);
        const char *date = date_text(g, day);
        const struct place *pl = NULL;
        const struct text *city = &city_sf;
        const struct text *atype = &addr_types[AT_PREMISE];
        char *w = out;
        int f;

#define FIELD(field, lit)                                                      \
        do {                                                                   \
                lay->key[field] = (unsigned short)(w - out);                   \
                w = PUT_LIT(w, lit);                                           \
                lay->val[field] = (unsigned short)(w - out);                   \
        } while (0)
#define END(field) lay->end[field] = (unsigned short)(w - out)

        *w++ = '{';
        FIELD(CS_F_CRIME_ID, "\"crime_id\":");
        if (c->int_id) {
                w = put_u64(w, c->id);
        } else {
                *w++ = '"';
                w = put_u64(w, c->id);
                *w++ = '"';
        }
        END(CS_F_CRIME_ID);

        FIELD(CS_F_ORIGINAL_CRIME_TYPE_NAME, ",\"original_crime_type_name\":");
        *w++ = '"';
        w = put_text(w, &crime_types[c->type].name);
        *w++ = '"';
        END(CS_F_ORIGINAL_CRIME_TYPE_NAME);

        /* report_date, call_date and offense_date are the day at midnight
         * in the real data. */
        for (f = CS_F_REPORT_DATE; f <= CS_F_OFFENSE_DATE; f++) {
                if (f == CS_F_REPORT_DATE)
                        FIELD(f, ",\"report_date\":");
                else if (f == CS_F_CALL_DATE)
                        FIELD(f, ",\"call_date\":");
                else
                        FIELD(f, ",\"offense_date\":");
                *w++ = '"';
                w = put(w, date, 10);
                w = PUT_LIT(w, "T00:00:00.000\"");
                END(f);
        }

        FIELD(CS_F_CALL_TIME, ",\"call_time\":");
        *w++ = '"';
        w = put2(w, sod / 3600);
        *w++ = ':';
        w = put2(w, sod / 60 % 60);
        *w++ = '"';
        END(CS_F_CALL_TIME);

        /* Whole minutes, as in the real data. */
        FIELD(CS_F_CALL_DATE_TIME, ",\"call_date_time\":");
        *w++ = '"';
        w = put(w, date, 10);
        *w++ = 'T';
        w = put2(w, sod / 3600);
        *w++ = ':';
        w = put2(w, sod / 60 % 60);
        w = PUT_LIT(w, ":00.000\"");
        END(CS_F_CALL_DATE_TIME);

        FIELD(CS_F_DISPOSITION, ",\"disposition\":");
        *w++ = '"';
        w = put_text(w, &dispositions[c->disp]);
        *w++ = '"';
        END(CS_F_DISPOSITION);

        FIELD(CS_F_ADDRESS, ",\"address\":");
        *w++ = '"';
        switch (c->loc) {
        case L_PREMISE:
                w = put_street_block(w, c, 0);
                atype = &addr_types[AT_PREMISE];
                break;
        case L_GEO_BLOCK:
                w = put_street_block(w, c, 1);
                atype = &addr_types[AT_GEO];
                break;
        case L_INTERSECTION: {
                char *second;

                w = put_text(w, &streets[c->a].name);
                *w++ = '/';
                second = w;
                w = put_text(w, &streets[c->b].name);
                /* The real data lower-cases the second street's initial. */
                if (*second >= 'A' && *second <= 'Z')
                        *second = (char)(*second - 'A' + 'a');
                atype = &addr_types[AT_INTERSECTION];
                break;
        }
        case L_COMMON:
                pl = &common_places[c->a];
                break;
        case L_ODD:
                pl = &odd_places[c->a];
                break;
        default:
                pl = &fancy_places[c->a];
                break;
        }
        if (pl) {
                w = put_text(w, &pl->address);
                city = &pl->city;
                atype = &addr_types[pl->type];
        }
        *w++ = '"';
        END(CS_F_ADDRESS);

        FIELD(CS_F_CITY, ",\"city\":");
        *w++ = '"';
        w = put_text(w, city);
        *w++ = '"';
        END(CS_F_CITY);

        FIELD(CS_F_STATE, ",\"state\":");
        w = PUT_LIT(w, "\"CA\"");
        END(CS_F_STATE);

        FIELD(CS_F_AGENCY_ID, ",\"agency_id\":");
        w = PUT_LIT(w, "\"1\"");
        END(CS_F_AGENCY_ID);

        FIELD(CS_F_ADDRESS_TYPE, ",\"address_type\":");
        *w++ = '"';
        w = put_text(w, atype);
        *w++ = '"';
        END(CS_F_ADDRESS_TYPE);

        FIELD(CS_F_COMMON_LOCATION, ",\"common_location\":");
        *w++ = '"';
        if (pl)
                w = put_text(w, &pl->common);
        *w++ = '"';
        END(CS_F_COMMON_LOCATION);
        *w++ = '}';

#undef FIELD
#undef END
        return (size_t)(w - out);
}

/*
 * Drawing calls.
 */

static void draw_location(struct gen *g, struct call *c, int plain)
{
        unsigned r = below(g, 1000);

        c->b = 0;
        c->block = 0;
        if (r < 2 && !plain) {
                c->loc = L_FANCY;
                c->a = (unsigned short)below(g, N_FANCY);
        } else if (r < 36) {
                c->loc = L_ODD;
                c->a = (unsigned short)pick(g, g->odd_cum, N_ODD);
        } else if (r < 220) {
                c->loc = L_COMMON;
                c->a = (unsigned short)pick(g, g->common_cum, N_COMMON);
        } else if (r < 614) {
                c->loc = L_INTERSECTION;
                c->a = (unsigned short)pick(g, g->street_cum, N_STREETS);
                do
                        c->b = (unsigned short)pick(g, g->street_cum,
                                                    N_STREETS);
                while (c->b == c->a);
        } else {
                unsigned h = below(g, 100);

                /* Low block numbers are the most common, as in the data. */
                c->loc = r < 638 ? L_GEO_BLOCK : L_PREMISE;
                c->a = (unsigned short)pick(g, g->street_cum, N_STREETS);
                c->block = (unsigned char)(h < 70   ? below(g, 10)
                                           : h < 92 ? 10 + below(g, 20)
                                                    : 30 + below(g, 30));
        }
}

static unsigned draw_disposition(struct gen *g, unsigned type)
{
        return pick(g, g->disp_cum[crime_types[type].profile], N_DISP);
}

static unsigned draw_type(struct gen *g)
{
        /* About one call in a thousand spells its crime type oddly. */
        if (below(g, 1000) == 0)
                return g->type_variants[below(g, g->n_type_variants)];
        return pick(g, g->type_cum, N_TYPES);
}

/* The decoded identity of a crime type (variants map to their plain
 * spelling), so a changed duplicate really changes it. */
static unsigned type_canon(unsigned type)
{
        return crime_types[type].same_as >= 0
                       ? (unsigned)crime_types[type].same_as
                       : type;
}

static void draw_call(struct gen *g, struct call *c, int64_t ts)
{
        c->id = g->next_id;
        /* Real crime_ids advance by about two per call (other agencies'
         * incidents share the sequence). */
        g->next_id += 1 + below(g, 3);
        c->ts = ts;
        c->type = (unsigned short)draw_type(g);
        c->disp = (unsigned char)draw_disposition(g, c->type);
        draw_location(g, c, 0);
        c->int_id = (unsigned char)chance(g, g->int_ids);
}

static void remember(struct gen *g, const struct call *c)
{
        g->ring[g->ring_next] = *c;
        g->ring_next = (g->ring_next + 1) % RING_SIZE;
        if (g->ring_n < RING_SIZE)
                g->ring_n++;
}

static const struct call *recall(struct gen *g)
{
        return &g->ring[below(g, g->ring_n)];
}

/* Changes the disposition, crime type or location of c, so that the
 * decoded record differs from the original. */
static void change_call(struct gen *g, struct call *c)
{
        unsigned r = below(g, 10);
        int tries;

        if (r < 6) {
                unsigned old = c->disp;

                for (tries = 0; tries < 8 && c->disp == old; tries++)
                        c->disp = (unsigned char)draw_disposition(g, c->type);
                if (c->disp == old)
                        c->disp = (unsigned char)((old + 1) % N_DISP);
        } else if (r < 8) {
                unsigned old = type_canon(c->type);

                do
                        c->type = (unsigned short)pick(g, g->type_cum, N_TYPES);
                while (type_canon(c->type) == old);
                c->disp = (unsigned char)draw_disposition(g, c->type);
        } else {
                struct call old = *c;

                if (old.loc == L_FANCY) {
                        /* A fancy place may decode like a plain one; a
                         * premise address never does. */
                        do
                                draw_location(g, c, 1);
                        while (c->loc != L_PREMISE);
                } else {
                        do
                                draw_location(g, c, 1);
                        while (c->loc == old.loc && c->a == old.a &&
                               c->b == old.b && c->block == old.block);
                }
        }
        c->int_id = (unsigned char)chance(g, g->int_ids);
}

/*
 * Malformed messages. Each starts from a rendered valid call and breaks one
 * rule for good (see cs_parse.h); every variant is invalid whatever else
 * the line holds, and none contains a newline or NUL byte.
 */

enum malformed_kind {
        M_TRUNCATED,
        M_NOT_OBJECT,
        M_DOUBLE_ENCODED,
        M_NO_ID,
        M_EMPTY_ID,
        M_NEGATIVE_ID,
        M_ID_WRONG_TYPE,
        M_NO_TYPE,
        M_EMPTY_TYPE,
        M_BAD_DATE,
        M_BAD_TIME,
        M_BAD_FORMAT,
        M_TIME_NOT_STRING,
        M_BAD_UTF8,
        M_TRAILING,
        M_NUL_IN_TYPE,
        M_CONTROL_CHAR,
        M_BAD_ESCAPE,
        M_SYNTAX,
        M_LAST_KEY_BAD,
        M_N
};

/* Replaces src[from, to) with ins into dst; returns the new length. */
static size_t splice(char *dst, const char *src, size_t len, size_t from,
                     size_t to, const char *ins, size_t ins_len)
{
        memcpy(dst, src, from);
        memcpy(dst + from, ins, ins_len);
        memcpy(dst + from + ins_len, src + to, len - to);
        return len - (to - from) + ins_len;
}

static size_t replace_value(char *dst, const char *src, size_t len,
                            const struct layout *lay, int f, const char *v,
                            size_t vlen)
{
        return splice(dst, src, len, lay->val[f], lay->end[f], v, vlen);
}

static size_t omit_field(char *dst, const char *src, size_t len,
                         const struct layout *lay, int f)
{
        if (f == 0) /* and the comma after it */
                return splice(dst, src, len, lay->key[0], lay->end[0] + 1, "",
                              0);
        return splice(dst, src, len, lay->key[f], lay->end[f], "", 0);
}

/* Inserts ins into the string value of field f: after its first space, or
 * at its end. A space is never inside an escape or a multi-byte character,
 * so the rest of the string stays as it was. */
static size_t inject(char *dst, const char *src, size_t len,
                     const struct layout *lay, int f, const char *ins,
                     size_t ins_len)
{
        size_t from = lay->val[f] + 1u, to = lay->end[f] - 1u, at = to, i;

        for (i = from; i < to; i++) {
                if (src[i] == ' ') {
                        at = i + 1;
                        break;
                }
        }
        return splice(dst, src, len, at, at, ins, ins_len);
}

/* Inserts ins just before the closing brace. */
static size_t append_member(char *dst, const char *src, size_t len,
                            const char *ins, size_t ins_len)
{
        return splice(dst, src, len, len - 1, len - 1, ins, ins_len);
}

#define LIT(s) s, sizeof(s) - 1

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr",
                                          "May", "Jun", "Jul", "Aug",
                                          "Sep", "Oct", "Nov", "Dec"};

/* A call_date_time string (quotes included) in a format the parser must
 * refuse. */
static size_t bad_format(struct gen *g, const struct call *c, char *v,
                         size_t size)
{
        int64_t day = cs_time_floor_div(c->ts, 86400);
        int sod = (int)(c->ts - day * 86400), h = sod / 3600,
            mi = sod / 60 % 60, y, mo, d, n;

        cs_time_civil_from_days(day, &y, &mo, &d);
        switch (below(g, 18)) {
        case 0:
                n = snprintf(v, size, "\"%02d/%02d/%04d %02d:%02d %s\"", mo, d,
                             y, h % 12 ? h % 12 : 12, mi, h < 12 ? "AM" : "PM");
                break;
        case 1:
                n = snprintf(v, size, "\"%04d-%02d-%02d\"", y, mo, d);
                break;
        case 2:
                n = snprintf(v, size, "\"%04d-%02d-%02dT%02d:%02d:00.0000000\"",
                             y, mo, d, h, mi);
                break;
        case 3:
                n = snprintf(v, size, "\"%04d-%02d-%02dT%02d\"", y, mo, d, h);
                break;
        case 4:
                n = snprintf(v, size, "\"%04d-%02d-%02dT%02d:%02d:00Z\"", y, mo,
                             d, h, mi);
                break;
        case 5:
                n = snprintf(v, size, "\"%04d-%02d-%02dT%02d:%02d:00+00:00\"",
                             y, mo, d, h, mi);
                break;
        case 6:
                n = snprintf(v, size, "\"%04d%02d%02dT%02d%02d00\"", y, mo, d,
                             h, mi);
                break;
        case 7:
                n = snprintf(v, size, "\"%04d-%02d-%02dt%02d:%02d:00.000\"", y,
                             mo, d, h, mi);
                break;
        case 8:
                n = snprintf(v, size, "\"\"");
                break;
        case 9:
                n = snprintf(v, size, "\" %04d-%02d-%02dT%02d:%02d:00.000\"", y,
                             mo, d, h, mi);
                break;
        case 10:
                n = snprintf(v, size, "\"%04d-%02d-%02dT%02d:%02d:00.000 \"", y,
                             mo, d, h, mi);
                break;
        case 11:
                n = snprintf(v, size, "\"%04d-%02d-%02dT%02d:%02d:00.\"", y, mo,
                             d, h, mi);
                break;
        case 12:
                n = snprintf(v, size, "\"0000-%02d-%02dT%02d:%02d:00.000\"", mo,
                             d, h, mi);
                break;
        case 13:
                n = snprintf(v, size, "\"%04d-%02d-%02dT%02d:%02d:0\"", y, mo,
                             d, h, mi);
                break;
        case 14:
                n = snprintf(v, size, "\"%04d-%02d-%02d_%02d:%02d\"", y, mo, d,
                             h, mi);
                break;
        case 15:
                n = snprintf(v, size, "\"%s %02d %04d %02d:%02d%s\"",
                             month_names[mo - 1], d, y, h % 12 ? h % 12 : 12,
                             mi, h < 12 ? "AM" : "PM");
                break;
        case 16:
                n = snprintf(v, size, "\"%04d-%02d-%02dT%02d:%02d:00,000\"", y,
                             mo, d, h, mi);
                break;
        default:
                n = snprintf(v, size, "\"1%04d-%02d-%02dT%02d:%02d:00.000\"", y,
                             mo, d, h, mi);
                break;
        }
        return (size_t)n;
}

/* Writes a malformed line built from c at out; returns its length. */
static size_t render_malformed(struct gen *g, const struct call *c, char *out)
{
        static const char *const bad_utf8[] = {
                "\xff",         "\xc3\x28",         "\xc0\xaf",
                "\xed\xa0\x80", "\xe2\x82",         "\xf5\x80\x80\x80",
                "\x80",         "\xf0\x82\x82\xac", "\xfe\xfe",
        };
        static const char *const dates[] = {
                "02-30", "02-31", "04-31", "06-31", "09-31",
                "11-31", "13-01", "00-15", "12-32", "01-00",
        };
        static const char *const controls[] = {"\t", "\x01", "\x1b", "\x1f"};
        static const char *const escapes[] = {"\\x41", "\\u00g1", "\\U00E9",
                                              "\\'",   "\\a",     "\\u12-"};
        static const char *const not_strings[] = {
                "1546300620",
                "1546300620000",
                "null",
                "true",
                "false",
                "{\"$date\":\"2018-12-31T23:57:00.000\"}",
                "[\"2018-12-31T23:57:00.000\"]",
                "2018.1231",
        };
        static const char *const id_types[] = {
                "true",
                "false",
                "null",
                "{}",
                "[]",
                "{\"id\":\"190000123\"}",
                "[\"190000123\"]",
        };
        static const char *const trailing[] = {
                "x",    "}", ",",        "{}", " 1",
                "\"\"", "]", " garbage", ";",  " null",
        };
        static const char *const last_keys[] = {
                ",\"crime_id\":\"\"",
                ",\"crime_id\":null",
                ",\"crime_id\":-5",
                ",\"original_crime_type_name\":\"\"",
                ",\"original_crime_type_name\":null",
                ",\"call_date_time\":\"2019-02-30T10:00:00.000\"",
                ",\"call_date_time\":null",
                ",\"original_crime_type_name\":\"Passing\\u0000Call\"",
        };
        struct layout lay;
        char v[128];
        char *src = g->tmp;
        size_t len = render(g, c, src, &lay), n, i;
        const char *s;
        char *w;

        switch (below(g, M_N)) {
        case M_TRUNCATED:
                /* A prefix of an object never closes it. */
                n = 1 + below(g, (unsigned)len - 1);
                memcpy(out, src, n);
                return n;
        case M_NOT_OBJECT:
                switch (below(g, 6)) {
                case 0:
                        out[0] = '[';
                        memcpy(out + 1, src, len);
                        out[len + 1] = ']';
                        return len + 2;
                case 1:
                        memcpy(out, "[]", 2);
                        return 2;
                case 2:
                        w = out;
                        *w++ = '"';
                        w = put_text(w, &crime_types[c->type].name);
                        *w++ = '"';
                        return (size_t)(w - out);
                case 3:
                        return (size_t)(put_u64(out, c->id) - out);
                case 4:
                        memcpy(out, "null", 4);
                        return 4;
                default:
                        memcpy(out, "\"\"", 2);
                        return 2;
                }
        case M_DOUBLE_ENCODED:
                /* The record JSON-encoded twice: a string, not an object. */
                w = out;
                *w++ = '"';
                for (i = 0; i < len; i++) {
                        if (src[i] == '"' || src[i] == '\\')
                                *w++ = '\\';
                        *w++ = src[i];
                }
                *w++ = '"';
                return (size_t)(w - out);
        case M_NO_ID:
                return omit_field(out, src, len, &lay, CS_F_CRIME_ID);
        case M_EMPTY_ID:
                return replace_value(out, src, len, &lay, CS_F_CRIME_ID,
                                     LIT("\"\""));
        case M_NEGATIVE_ID:
                v[0] = '-';
                n = below(g, 4) ? (size_t)(put_u64(v + 1, c->id) - v) : 2;
                if (n == 2)
                        v[1] = '1';
                return replace_value(out, src, len, &lay, CS_F_CRIME_ID, v, n);
        case M_ID_WRONG_TYPE:
                s = id_types[below(g, CS_ARRAY_SIZE(id_types))];
                return replace_value(out, src, len, &lay, CS_F_CRIME_ID, s,
                                     strlen(s));
        case M_NO_TYPE:
                if (below(g, 2))
                        return replace_value(out, src, len, &lay,
                                             CS_F_ORIGINAL_CRIME_TYPE_NAME,
                                             LIT("null"));
                return omit_field(out, src, len, &lay,
                                  CS_F_ORIGINAL_CRIME_TYPE_NAME);
        case M_EMPTY_TYPE:
                return replace_value(out, src, len, &lay,
                                     CS_F_ORIGINAL_CRIME_TYPE_NAME,
                                     LIT("\"\""));
        case M_BAD_DATE:
                /* MM-DD of "YYYY-MM-DDTHH:MM:00.000": no year has them. */
                memcpy(out, src, len);
                memcpy(out + lay.val[CS_F_CALL_DATE_TIME] + 6,
                       dates[below(g, CS_ARRAY_SIZE(dates))], 5);
                return len;
        case M_BAD_TIME:
                /* Hour 25-99, minute 60-99 or second 60-99 (no leap
                 * seconds). */
                memcpy(out, src, len);
                i = below(g, 3);
                put2(out + lay.val[CS_F_CALL_DATE_TIME] + 12 + 3 * i,
                     (i ? 60 : 25) + (int)below(g, i ? 40 : 75));
                return len;
        case M_BAD_FORMAT:
                n = bad_format(g, c, v, sizeof(v));
                return replace_value(out, src, len, &lay, CS_F_CALL_DATE_TIME,
                                     v, n);
        case M_TIME_NOT_STRING:
                s = not_strings[below(g, CS_ARRAY_SIZE(not_strings))];
                return replace_value(out, src, len, &lay, CS_F_CALL_DATE_TIME,
                                     s, strlen(s));
        case M_BAD_UTF8:
                s = bad_utf8[below(g, CS_ARRAY_SIZE(bad_utf8))];
                return inject(out, src, len, &lay,
                              below(g, 2) ? CS_F_ADDRESS
                                          : CS_F_ORIGINAL_CRIME_TYPE_NAME,
                              s, strlen(s));
        case M_TRAILING:
                memcpy(out, src, len);
                if (below(g, 4) == 0) { /* two records on one line */
                        memcpy(out + len, src, len);
                        return 2 * len;
                }
                s = trailing[below(g, CS_ARRAY_SIZE(trailing))];
                n = strlen(s);
                memcpy(out + len, s, n);
                return len + n;
        case M_NUL_IN_TYPE:
                return inject(out, src, len, &lay,
                              CS_F_ORIGINAL_CRIME_TYPE_NAME, LIT("\\u0000"));
        case M_CONTROL_CHAR:
                /* JSON wants control characters escaped. */
                s = controls[below(g, CS_ARRAY_SIZE(controls))];
                return inject(out, src, len, &lay, CS_F_ADDRESS, s, 1);
        case M_BAD_ESCAPE:
                s = escapes[below(g, CS_ARRAY_SIZE(escapes))];
                return inject(out, src, len, &lay, CS_F_ADDRESS, s, strlen(s));
        case M_SYNTAX:
                switch (below(g, 10)) {
                case 0: /* trailing comma */
                        return append_member(out, src, len, LIT(","));
                case 1: /* single quotes */
                        return replace_value(out, src, len, &lay, CS_F_STATE,
                                             LIT("'CA'"));
                case 2: /* unquoted string */
                        return replace_value(out, src, len, &lay, CS_F_STATE,
                                             LIT("CA"));
                case 3: /* missing comma */
                        i = 1 + below(g, CS_F_COUNT - 1);
                        return splice(out, src, len, lay.key[i],
                                      lay.key[i] + 1u, "", 0);
                case 4: /* missing colon */
                        i = below(g, CS_F_COUNT);
                        return splice(out, src, len, lay.val[i] - 1u,
                                      lay.val[i], "", 0);
                case 5: /* not a JSON number */
                        s = below(g, 2) ? "NaN" : "Infinity";
                        return replace_value(out, src, len, &lay,
                                             CS_F_AGENCY_ID, s, strlen(s));
                case 6: /* leading zero */
                        v[0] = '0';
                        n = (size_t)(put_u64(v + 1, c->id) - v);
                        return replace_value(out, src, len, &lay, CS_F_CRIME_ID,
                                             v, n);
                case 7: /* plus sign */
                        v[0] = '+';
                        n = (size_t)(put_u64(v + 1, c->id) - v);
                        return replace_value(out, src, len, &lay, CS_F_CRIME_ID,
                                             v, n);
                case 8: /* a comment */
                        return splice(out, src, len, 1, 1, LIT("/* cad */"));
                default: /* missing value */
                        return replace_value(out, src, len, &lay,
                                             CS_F_AGENCY_ID, "", 0);
                }
        default:
                /* A repeated key: the last one wins and is invalid. */
                s = last_keys[below(g, CS_ARRAY_SIZE(last_keys))];
                return append_member(out, src, len, s, strlen(s));
        }
}

/*
 * Output.
 */

static int flush_out(struct gen *g)
{
        if (g->fill && fwrite(g->buf, 1, g->fill, g->out) != g->fill)
                return -1;
        g->fill = 0;
        return 0;
}

/* Writes one line of each kind the rates ask for; returns 0 or -1 after
 * logging why. */
static int generate(struct gen *g, long long count)
{
        struct layout lay;
        long long i;

        for (i = 0; i < count; i++) {
                uint64_t u = next_u64(g) >> 11;
                char *w;
                struct call c;
                int kind = K_NEW;

                while (kind > 0 && u < g->kind_cut[kind - 1])
                        kind--;
                if ((kind == K_DUP || kind == K_CHANGED) && !g->ring_n)
                        kind = K_NEW;

                if (g->fill > OUT_BUFSZ - MAX_LINE && flush_out(g) == -1)
                        goto write_error;
                w = g->buf + g->fill;

                if (kind >= K_MALFORMED && g->clock_us / 1000000 > MAX_TS) {
                        if (flush_out(g) == -1 || fflush(g->out) != 0)
                                goto write_error;
                        cs_log(CS_LOG_ERROR,
                               "generate: event time passed 9999-12-31 after "
                               "%lld lines; use a smaller --count or a higher "
                               "--per-hour",
                               i);
                        return -1;
                }

                switch (kind) {
                case K_DUP:
                        g->fill += render(g, recall(g), w, &lay);
                        break;
                case K_CHANGED:
                        c = *recall(g);
                        change_call(g, &c);
                        g->fill += render(g, &c, w, &lay);
                        break;
                case K_MALFORMED:
                        draw_call(g, &c,
                                  cs_time_floor_div(g->clock_us, 1000000));
                        g->fill += render_malformed(g, &c, w);
                        /* Sometimes the producer resends it correctly. */
                        if (!g->have_pending && below(g, 4) == 0) {
                                g->pending = c;
                                g->have_pending = 1;
                        }
                        break;
                default: {
                        int64_t now = cs_time_floor_div(g->clock_us, 1000000);

                        if (g->have_pending) {
                                c = g->pending;
                                g->have_pending = 0;
                        } else if (kind == K_LATE && g->ring_n) {
                                /* The first call keeps --start. Whole
                                 * minutes back from the current minute, so
                                 * no printed time is later than
                                 * --max-delay. */
                                int64_t ts =
                                        cs_time_floor_div(now, 60) * 60 -
                                        60 * (1 +
                                              (int64_t)below(
                                                      g,
                                                      (unsigned)(g->max_delay /
                                                                 60)));

                                draw_call(g, &c, ts < MIN_TS ? MIN_TS : ts);
                        } else {
                                draw_call(g, &c, now);
                        }
                        g->fill += render(g, &c, w, &lay);
                        remember(g, &c);
                        /* Exponential gaps: a Poisson stream of calls. */
                        g->clock_us += (int64_t)(-log(1.0 - uniform(g)) *
                                                         g->gap_mean_us +
                                                 0.5);
                        break;
                }
                }
                g->buf[g->fill++] = '\n';
        }
        if (flush_out(g) == -1 || fflush(g->out) != 0)
                goto write_error;
        return 0;

write_error:
        cs_log(CS_LOG_ERROR, "generate: cannot write output: %s",
               strerror(errno));
        return -1;
}

/*
 * Options.
 */

static void usage(void)
{
        fputs("Usage: callstream generate --count N [OPTIONS]\n"
              "\n"
              "Writes N synthetic San Francisco police calls for service as "
              "NDJSON: one\n"
              "compact JSON object per line with the 14 fields of the real "
              "data, values as\n"
              "strings, crime types, dispositions and addresses drawn like the "
              "real data.\n"
              "The same seed and options give byte-identical output.\n"
              "\n"
              "Options:\n"
              "  --count N               lines to write, of every kind "
              "(required)\n"
              "  --seed S                random seed, 0 or more (default 1)\n"
              "  --start TIME            event time of the first call, "
              "YYYY-MM-DD[THH:MM[:SS]]\n"
              "                          (default 2018-12-31T00:00:00)\n"
              "  --per-hour N            average new calls per hour of event "
              "time, spaced\n"
              "                          as a Poisson stream (default 120)\n"
              "  --duplicates R          fraction of lines that repeat one of "
              "the last 1024\n"
              "                          new calls byte for byte (default 0)\n"
              "  --changed-duplicates R  fraction of lines that reuse one of "
              "those crime_ids\n"
              "                          with another disposition, crime type "
              "or address\n"
              "                          (default 0)\n"
              "  --out-of-order R        fraction of lines that are new calls "
              "timed up to\n"
              "                          --max-delay before the stream's "
              "current time\n"
              "                          (default 0)\n"
              "  --max-delay D           a duration (N with unit s, m, h or "
              "d), 1m to\n"
              "                          366d; calls move back by whole "
              "minutes (default 6h)\n"
              "  --malformed R           fraction of lines that are not valid "
              "calls: cut or\n"
              "                          broken JSON, no object, missing, "
              "empty, negative or\n"
              "                          non-string crime_id, missing or empty "
              "crime type,\n"
              "                          impossible or misformatted "
              "call_date_time, invalid\n"
              "                          UTF-8, trailing data, \\u0000 "
              "(default 0)\n"
              "  --int-ids R             fraction of valid calls whose "
              "crime_id is a JSON\n"
              "                          integer (default 0)\n"
              "  --output FILE           write to FILE instead of standard "
              "output\n"
              "  --format json|avro      avro: write each line as one message, "
              "a 4-byte\n"
              "                          big-endian length then the bytes: "
              "valid calls\n"
              "                          encoded as Avro, other lines as they "
              "are\n"
              "                          (`produce --format avro "
              "--input-framing length`\n"
              "                          sends them)\n"
              "  --avro-schema FILE      Avro schema (default: "
              "schemas/calls.avsc, built in)\n"
              "  --framing plain|confluent, --schema-id N\n"
              "                          Avro: the datum alone (default), or "
              "byte 0 and\n"
              "                          the 4-byte schema id (default 0) "
              "before it\n"
              "  -v, --verbose           log more\n"
              "  -q, --quiet             log errors only\n"
              "  -h, --help              show this help\n"
              "      --version           show the versions of callstream and "
              "its libraries\n"
              "\n"
              "The four line fractions are exclusive and add up to 1 at most; "
              "the other\n"
              "lines are new calls in time order. crime_ids start near "
              "190000000 and grow.\n",
              stdout);
}

/* Parses "YYYY-MM-DD[(T| )HH:MM[:SS]]" into seconds since 1970. */
static int parse_start(const char *s, int64_t *out)
{
        size_t len = strlen(s);
        int64_t days;
        int32_t usec;

        if (len == 10) {
                if (cs_time_parse_date(s, len, &days) < 0)
                        return -1;
                *out = days * 86400;
                return 0;
        }
        if (len != 16 && len != 19)
                return -1;
        return cs_time_parse(s, len, out, &usec);
}

enum {
        O_COUNT = 256,
        O_SEED,
        O_START,
        O_PER_HOUR,
        O_DUPLICATES,
        O_CHANGED,
        O_OUT_OF_ORDER,
        O_MAX_DELAY,
        O_MALFORMED,
        O_INT_IDS,
        O_OUTPUT,
        O_FORMAT,
        O_AVRO_SCHEMA,
        O_FRAMING,
        O_SCHEMA_ID,
};

static const struct option longopts[] = {
        {"count", required_argument, NULL, O_COUNT},
        {"seed", required_argument, NULL, O_SEED},
        {"start", required_argument, NULL, O_START},
        {"per-hour", required_argument, NULL, O_PER_HOUR},
        {"duplicates", required_argument, NULL, O_DUPLICATES},
        {"changed-duplicates", required_argument, NULL, O_CHANGED},
        {"out-of-order", required_argument, NULL, O_OUT_OF_ORDER},
        {"max-delay", required_argument, NULL, O_MAX_DELAY},
        {"malformed", required_argument, NULL, O_MALFORMED},
        {"int-ids", required_argument, NULL, O_INT_IDS},
        {"output", required_argument, NULL, O_OUTPUT},
        {"format", required_argument, NULL, O_FORMAT},
        {"avro-schema", required_argument, NULL, O_AVRO_SCHEMA},
        {"framing", required_argument, NULL, O_FRAMING},
        {"schema-id", required_argument, NULL, O_SCHEMA_ID},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static void gen_init(struct gen *g, uint64_t seed, int64_t start,
                     long long per_hour)
{
        size_t i, p;

        for (i = 0; i < 4; i++)
                g->s[i] = splitmix64(&seed);
        cumulate(&crime_types[0].weight, sizeof(crime_types[0]), N_TYPES,
                 g->type_cum);
        for (i = 0; i < N_TYPES; i++)
                if (!crime_types[i].weight)
                        g->type_variants[g->n_type_variants++] =
                                (unsigned short)i;
        for (p = 0; p < P_N; p++)
                cumulate(disp_weights[p], sizeof(unsigned), N_DISP,
                         g->disp_cum[p]);
        cumulate(&streets[0].weight, sizeof(streets[0]), N_STREETS,
                 g->street_cum);
        cumulate(&common_places[0].weight, sizeof(common_places[0]), N_COMMON,
                 g->common_cum);
        cumulate(&odd_places[0].weight, sizeof(odd_places[0]), N_ODD,
                 g->odd_cum);
        g->clock_us = start * 1000000;
        g->gap_mean_us = 3600e6 / (double)per_hour;
        g->next_id = 190000000 + below(g, 1000);
        g->cache_day = INT64_MIN;
}

int cs_cmd_generate(int argc, char **argv)
{
        static const char *const rate_flags[] = {
                "--duplicates", "--changed-duplicates", "--malformed",
                "--out-of-order"};
        double rates[K_NEW] = {0, 0, 0, 0}; /* in enum line_kind order */
        double int_ids = 0, sum = 0;
        long long count = -1, seed = 1, per_hour = 120;
        int64_t start, max_delay = 6 * 3600;
        const char *start_arg = "2018-12-31T00:00:00";
        const char *output = NULL, *avro_schema = NULL;
        struct gen *g = NULL;
        struct cs_avro_encoder *enc = NULL;
        FILE *final = NULL;
        char *avro_json = NULL, errstr[512];
        int avro = 0, framing = CS_AVRO_PLAIN;
        long long schema_id = 0;
        int c, i, ret = CS_EXIT_FAILURE;

        optind = 0; /* reset getopt for callers that run us twice */
        while ((c = cs_cli_getopt(CMD, argc, argv, ":h", longopts)) != -1) {
                switch (c) {
                case 'h':
                        usage();
                        return CS_EXIT_OK;
                case CS_CLI_DONE:
                        return CS_EXIT_OK;
                case O_COUNT:
                        if (cs_cli_int(CMD, "--count", optarg, 0, LLONG_MAX,
                                       &count) == -1)
                                return CS_EXIT_USAGE;
                        break;
                case O_SEED:
                        if (cs_cli_int(CMD, "--seed", optarg, 0, LLONG_MAX,
                                       &seed) == -1)
                                return CS_EXIT_USAGE;
                        break;
                case O_START:
                        start_arg = optarg;
                        break;
                case O_PER_HOUR:
                        if (cs_cli_int(CMD, "--per-hour", optarg, 1, 100000000,
                                       &per_hour) == -1)
                                return CS_EXIT_USAGE;
                        break;
                case O_DUPLICATES:
                case O_CHANGED:
                case O_MALFORMED:
                case O_OUT_OF_ORDER: {
                        int k = c == O_DUPLICATES  ? K_DUP
                                : c == O_CHANGED   ? K_CHANGED
                                : c == O_MALFORMED ? K_MALFORMED
                                                   : K_LATE;

                        if (cs_cli_rate(CMD, rate_flags[k], optarg,
                                        &rates[k]) == -1)
                                return CS_EXIT_USAGE;
                        break;
                }
                case O_MAX_DELAY:
                        if (cs_cli_duration(CMD, "--max-delay", optarg, 60,
                                            366LL * 86400, &max_delay) == -1)
                                return CS_EXIT_USAGE;
                        break;
                case O_INT_IDS:
                        if (cs_cli_rate(CMD, "--int-ids", optarg, &int_ids) ==
                            -1)
                                return CS_EXIT_USAGE;
                        break;
                case O_OUTPUT:
                        output = optarg;
                        break;
                case O_FORMAT:
                        if (strcmp(optarg, "json") && strcmp(optarg, "avro")) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --format '%s': "
                                                   "expected json or avro",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        avro = !strcmp(optarg, "avro");
                        break;
                case O_AVRO_SCHEMA:
                        avro_schema = optarg;
                        break;
                case O_FRAMING:
                        if (strcmp(optarg, "plain") &&
                            strcmp(optarg, "confluent")) {
                                cs_cli_usage_error(CMD,
                                                   "invalid --framing '%s': "
                                                   "expected plain or "
                                                   "confluent",
                                                   optarg);
                                return CS_EXIT_USAGE;
                        }
                        framing = !strcmp(optarg, "plain") ? CS_AVRO_PLAIN
                                                           : CS_AVRO_CONFLUENT;
                        break;
                case O_SCHEMA_ID:
                        if (cs_cli_int(CMD, "--schema-id", optarg, 0,
                                       UINT32_MAX, &schema_id) == -1)
                                return CS_EXIT_USAGE;
                        break;
                default:
                        return CS_EXIT_USAGE;
                }
        }
        if (cs_cli_no_operands(CMD, argc, argv) < 0)
                return CS_EXIT_USAGE;
        if (count < 0) {
                cs_cli_usage_error(CMD, "missing --count");
                return CS_EXIT_USAGE;
        }
        if (parse_start(start_arg, &start) == -1) {
                cs_cli_usage_error(CMD,
                                   "invalid --start '%s': expected "
                                   "YYYY-MM-DD[THH:MM[:SS]] from year 1 "
                                   "to 9999",
                                   start_arg);
                return CS_EXIT_USAGE;
        }
        for (i = 0; i < K_NEW; i++)
                sum += rates[i];
        /* Allow for rounding in sums such as 0.1 + 0.2 + 0.3 + 0.4. */
        if (sum > 1.0 + 1e-9) {
                cs_cli_usage_error(CMD,
                                   "--duplicates, --changed-duplicates, "
                                   "--out-of-order and --malformed add up to "
                                   "%g, more than 1",
                                   sum);
                return CS_EXIT_USAGE;
        }

        if (avro) {
                if (avro_schema &&
                    cs_avro_schema_load(avro_schema, &avro_json, errstr,
                                        sizeof(errstr)) < 0) {
                        cs_cli_usage_error(CMD, "--avro-schema %s", errstr);
                        return CS_EXIT_USAGE;
                }
                enc = cs_avro_encoder_new(
                        avro_json ? avro_json : cs_avro_calls_schema, framing,
                        schema_id, errstr, sizeof(errstr));
                free(avro_json);
                if (!enc) {
                        cs_cli_usage_error(CMD, "%s: %s",
                                           avro_schema ? avro_schema
                                                       : "built-in schema",
                                           errstr);
                        return CS_EXIT_USAGE;
                }
        } else if (avro_schema || framing || schema_id) {
                cs_cli_usage_error(CMD, "--avro-schema, --framing and "
                                        "--schema-id need --format avro");
                return CS_EXIT_USAGE;
        }

        g = calloc(1, sizeof(*g));
        if (!g || !(g->buf = malloc(OUT_BUFSZ))) {
                cs_log(CS_LOG_ERROR, "generate: out of memory");
                goto fail;
        }
        gen_init(g, (uint64_t)seed, start, per_hour);
        g->int_ids = int_ids;
        g->max_delay = max_delay;
        for (i = 0, sum = 0; i < K_NEW; i++) {
                sum += rates[i];
                g->kind_cut[i] =
                        sum >= 1.0 ? (1ULL << 53) : (uint64_t)(sum * 0x1.0p53);
        }

        if (output) {
                g->out = fopen(output, "wb");
                if (!g->out) {
                        cs_log(CS_LOG_ERROR, "generate: cannot open '%s': %s",
                               output, strerror(errno));
                        goto fail;
                }
        } else {
                g->out = stdout;
        }

        /* Avro: the NDJSON goes to a temporary file first, then each
         * line becomes one length-prefixed message. */
        if (enc) {
                final = g->out;
                if (!(g->out = tmpfile())) {
                        g->out = final;
                        cs_log(CS_LOG_ERROR, "generate: temporary file: %s",
                               strerror(errno));
                        goto fail;
                }
        }
        if (generate(g, count) == -1)
                goto fail;
        if (enc) {
                FILE *tmp = g->out;

                g->out = final;
                rewind(tmp);
                if (cs_avro_ndjson_to_frames(tmp, final, enc, errstr,
                                             sizeof(errstr)) < 0) {
                        fclose(tmp);
                        cs_log(CS_LOG_ERROR, "generate: %s", errstr);
                        goto fail;
                }
                fclose(tmp);
                if (fflush(final) != 0) {
                        cs_log(CS_LOG_ERROR, "generate: cannot write: %s",
                               strerror(errno));
                        goto fail;
                }
        }
        ret = CS_EXIT_OK;

fail:
        if (g && g->out && g->out != stdout && fclose(g->out) != 0 &&
            ret == CS_EXIT_OK) {
                cs_log(CS_LOG_ERROR, "generate: cannot write '%s': %s", output,
                       strerror(errno));
                ret = CS_EXIT_FAILURE;
        }
        if (g)
                free(g->buf);
        free(g);
        cs_avro_encoder_destroy(enc);
        return ret;
}
