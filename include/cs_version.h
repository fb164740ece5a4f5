/* cs_version.h: the one place callstream's version is defined. */
#ifndef CS_VERSION_H
#define CS_VERSION_H

#define CS_VERSION "0.9.0"

#endif
