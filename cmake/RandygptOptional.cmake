# Optional parts of the build, each chosen by a cache variable AUTO (build it when its library is
# found), ON (build it: a missing library is an error) or OFF (never).

# rg_optional_option(VAR DOC): declares VAR (default AUTO) and refuses any other value.
function(rg_optional_option var doc)
  set(${var} AUTO CACHE STRING "${doc}: AUTO, ON or OFF")
  set_property(CACHE ${var} PROPERTY STRINGS AUTO ON OFF)
  string(TOUPPER "${${var}}" value)
  if(NOT value MATCHES "^(AUTO|ON|OFF)$")
    message(FATAL_ERROR "${var} must be AUTO, ON or OFF, got '${${var}}'")
  endif()
endfunction()

# rg_optional_off(VAR RESULT): RESULT is TRUE when VAR is OFF (then nothing should be looked for).
function(rg_optional_off var result)
  string(TOUPPER "${${var}}" value)
  set(${result} FALSE PARENT_SCOPE)
  if(value STREQUAL "OFF")
    message(STATUS "${var}=OFF: not built")
    set(${result} TRUE PARENT_SCOPE)
  endif()
endfunction()

# rg_optional_found(VAR FOUND WHAT RESULT): RESULT is whether to build the part VAR chooses, whose
# library was found (FOUND true) or not; WHAT says what is missing and how to get it.
function(rg_optional_found var found what result)
  string(TOUPPER "${${var}}" value)
  if(found)
    set(${result} TRUE PARENT_SCOPE)
  elseif(value STREQUAL "ON")
    message(FATAL_ERROR "${var}=ON, but ${what}")
  else()
    message(STATUS "${var}=AUTO: not built, ${what}")
    set(${result} FALSE PARENT_SCOPE)
  endif()
endfunction()
