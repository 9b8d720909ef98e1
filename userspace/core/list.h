/* SPDX-License-Identifier: Apache-2.0 */
/* Intrusive circular doubly-linked lists, as in the Linux kernel. */
#ifndef SLUICE_CORE_LIST_H
#define SLUICE_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(struct list_node *head)
{
	head->prev = head->next = head;
}

static inline bool list_empty(const struct list_node *head)
{
	return head->next == head;
}

/* A node that is in no list points at itself (after list_init or list_del). */
static inline bool list_linked(const struct list_node *node)
{
	return node->next != node && node->next != NULL;
}

static inline void list_add_tail(struct list_node *head, struct list_node *node)
{
	node->prev = head->prev;
	node->next = head;
	head->prev->next = node;
	head->prev = node;
}

static inline void list_add_head(struct list_node *head, struct list_node *node)
{
	list_add_tail(head->next, node);
}

static inline void list_del(struct list_node *node)
{
	if (!list_linked(node))
		return;
	node->prev->next = node->next;
	node->next->prev = node->prev;
	list_init(node);
}

#define list_first(head, type, member) container_of((head)->next, type, member)

#endif
